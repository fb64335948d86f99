// The "Claims" section of bench/RESULTS.md, from results.json's `claims` (bench/lib/claims-run.mjs).
const TARGET_CLAIMS_PER_S = 500;

const fmt = (x, unit = "") => (x === null || x === undefined || Number.isNaN(x) ? "n/a" : `${typeof x === "number" ? x.toLocaleString("en-US") : x}${unit}`);
const ms = (x) => (x === null || x === undefined ? "n/a" : `${fmt(x)} ms`);
const p5099 = (s) => (s?.count ? `${ms(s.p50)} / ${ms(s.p99)}` : "n/a");
const VIAS = [
  ["proxy", "Through wrangler dev's proxy"],
  ["direct", "Straight to the runtime (no dev proxy)"],
];

export function renderClaims(c, line) {
  const cfg = c.config;
  const m = c.machine;
  line("## Claims", "");
  if (c.note) line(`> **${c.note}.** These numbers are not final: rerun on a quiet machine (\`npm run bench:claims\`).`, "");
  line(`Measured ${c.date} with \`${c.command}\` (bench/claims.mjs, bench/lib/claims.mjs; on a fresh \`wrangler dev\` of its own). Raw numbers: \`claims\` in \`bench/results.json\`.`, "");
  line(`Machine: \`nproc\` ${m.nproc}; CPU model ${m.cpu_model}; ${m.mem_total_gib} GiB; ${m.kernel}; Node ${m.node}; wrangler ${m.wrangler}.${c.load_average_1m ? ` Load average (1 min) at the start / end: ${c.load_average_1m.start} / ${c.load_average_1m.end ?? "n/a"} (${m.nproc} cores: above about 1 at the start, something else was running).` : ""}`, "");
  line(
    `Load: T. ${fmt(cfg.tasks)} tasks created first (\`POST /v1/tasks\`, ${cfg.createConcurrency} at a time), then ${cfg.workers} concurrent workers each loop \`POST /v1/tasks/claim {worker_id, role}\` → \`POST /v1/tasks/:id/complete {lease_id}\` until a claim answers 204. ` +
      "Claims/s counts the 200 claims from the workers' start to the last one; cycles/s the completions up to the last one. Every claimed id is recorded with its worker: zero double claims means every created task was claimed exactly once and none twice, " +
      "and at the end the server agrees: `GET /v1/tasks?status=completed&role=…` (every page) lists each created task once, each with `attempts` 1 and the `worker_id` that claimed it, and nothing of the role is left pending, claimed, running or failed. " +
      `L. ${cfg.workers} workers poll \`POST /v1/tasks/claim\` (sleeping ${cfg.pollMs} ms after each 204, completing each task they get) while a producer creates ${cfg.rate} tasks/s for ${cfg.latencyS} s on schedule, not waiting for answers; ` +
      "latency is the claim's answer minus the create's send, on the bench's clock (each task's title carries its sequence number, so a claim that answers before its create does is still matched); the server's own `created_at` → `claimed_at` is shown beside it. " +
      "Each run is on a team of its own, on one role, with no `max_running` and no daily budget.",
    "",
  );
  if (c.error) line("Failed:", "", "```", c.error, "```", "");

  const runs = VIAS.filter(([v]) => c.throughput?.[v] || c.latency?.[v]);
  if (runs.length) {
    const T = (v) => c.throughput?.[v];
    const L = (v) => c.latency?.[v];
    const rows = [];
    const row = (label, target, get) => rows.push(`| ${label} | ${target} | ${runs.map(([v]) => get(v) ?? "not run").join(" | ")} |`);
    row(`T. Claims per second, ${cfg.workers} workers, ${fmt(cfg.tasks)} tasks`, `${TARGET_CLAIMS_PER_S}/s`, (v) => T(v) && `${fmt(T(v).claims_per_s)}/s (${T(v).claims_per_s >= TARGET_CLAIMS_PER_S ? "met" : "**missed**"})`);
    row("T. Double claims; tasks claimed exactly once (of created)", "0; all", (v) => T(v) && `${fmt(T(v).client.double_claims)}; ${fmt(T(v).client.distinct_tasks_claimed - T(v).client.double_claims)} of ${fmt(T(v).create.created)} (${T(v).zero_double_claims ? "met, the server agrees" : "**missed**"})`);
    row("T. Claim → complete cycles per second", "", (v) => T(v) && `${fmt(T(v).cycles_per_s)}/s`);
    row("T. Claim latency p50 / p99", "", (v) => T(v) && p5099(T(v).claim_latency_ms));
    row("T. Complete latency p50 / p99", "", (v) => T(v) && p5099(T(v).complete_latency_ms));
    row(`T. Tasks created per second (setup, ${cfg.createConcurrency} at a time)`, "", (v) => T(v) && `${fmt(T(v).create.created_per_s)}/s`);
    row(`L. Created → claimed p50 / p99 at ${cfg.rate} creates/s`, "", (v) => L(v) && p5099(L(v).latency_ms));
    row("L. … the server's created_at → claimed_at p50 / p99", "", (v) => L(v) && p5099(L(v).server_created_to_claimed_ms));
    row("L. Double claims; never claimed (of created)", "0; 0", (v) => L(v) && `${fmt(L(v).client.double_claims)}; ${fmt(L(v).client.never_claimed)} of ${fmt(L(v).created)}`);
    line(`| Measure | Target (issue 4) | ${runs.map(([, t]) => t).join(" | ")} |`);
    line(`|---|---|${runs.map(() => "---|").join("")}`);
    line(...rows, "");

    for (const [v, title] of runs) {
      const t = T(v);
      if (t) {
        const s = t.server;
        line(
          `- T, ${title.toLowerCase()}: ${fmt(t.create.created)} created in ${ms(t.create.ms)} (create p50 ${ms(t.create.request_latency_ms.p50)}, p99 ${ms(t.create.request_latency_ms.p99)}); ` +
            `${fmt(t.claimed)} claims in ${ms(t.claim_window_ms)}, ${fmt(t.completed)} completed in ${ms(t.cycle_window_ms)}, every worker heard its 204 after ${ms(t.all_workers_done_ms)} (204 p50 ${ms(t.empty_claim_latency_ms.p50)}); ` +
            `claim statuses ${JSON.stringify(t.claim_statuses)}, complete statuses ${JSON.stringify(t.complete_statuses)}. ` +
            `Server at the end: ${fmt(s.completed_distinct)} distinct completed of ${fmt(s.completed_listed)} listed, attempts ${JSON.stringify(s.attempts)}, worker mismatches ${fmt(s.worker_mismatch)}, left ${JSON.stringify(s.not_completed_by_status)}.` +
            (t.first_errors.length ? ` First errors: ${t.first_errors.map((e) => `\`${e.replace(/`/g, "'")}\``).join("; ")}` : ""),
        );
      }
      const l = L(v);
      if (l) {
        line(
          `- L, ${title.toLowerCase()}: ${fmt(l.created)} of ${fmt(l.sent)} created at ${fmt(l.rate_achieved_per_s)}/s (at most ${ms(l.producer_max_behind_schedule_ms)} behind schedule; create p50 ${ms(l.create_latency_ms.p50)}, p99 ${ms(l.create_latency_ms.p99)}), ${fmt(l.claimed)} claimed; ` +
            `created → claimed p90 ${ms(l.latency_ms.p90)}, max ${ms(l.latency_ms.max)}; claim latency p50 / p99 ${p5099(l.claim_latency_ms)} when it got a task, ${p5099(l.empty_claim_latency_ms)} for a 204; ` +
            `claim statuses ${JSON.stringify(l.claim_statuses)} (${fmt(l.poll_sleep_ms)} ms sleep after each 204), complete statuses ${JSON.stringify(l.complete_statuses)}.` +
            (l.first_errors.length ? ` First errors: ${l.first_errors.map((e) => `\`${e.replace(/`/g, "'")}\``).join("; ")}` : ""),
        );
      }
    }
    line("");
  }

  const mem = c.memory;
  if (mem?.phases?.length) {
    const labels = [...new Set(mem.phases.flatMap((p) => Object.keys(p.cpu_percent_of_one_core)))];
    line(`CPU by phase: each kind of process's user+system time over the phase's wall time, in % of one core (this machine has ${m.nproc}); "–" for phases under a second. Peak summed RSS of the workerd processes ${fmt(Math.round(mem.peak_rss_kb / 1024))} MiB.`, "");
    line(`| Phase | Wall | ${labels.map((l) => `CPU ${l}`).join(" | ")} |`);
    line(`|---|---|${labels.map(() => "---|").join("")}`);
    for (const p of mem.phases) line(`| ${p.phase} | ${p.wall_s} s | ${labels.map((l) => (p.cpu_percent_of_one_core[l] === undefined || p.wall_s < 1 ? "–" : `${p.cpu_percent_of_one_core[l]}%`)).join(" | ")} |`);
    line("");
  }
}
