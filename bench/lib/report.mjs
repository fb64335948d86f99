// bench/RESULTS.md from the measured results (bench/results.json holds the same, raw): the
// three systems side by side, the restart test, Switchboard against the issue's targets,
// then each system's details; then the claims part, when measured (bench/lib/claims-report.mjs).
import { renderClaims } from "./claims-report.mjs";

const TARGETS = {
  accepted_per_s: 500,
  p99_ms_100: 250,
};

const fmt = (x, unit = "") => (x === null || x === undefined || Number.isNaN(x) ? "n/a" : `${typeof x === "number" ? x.toLocaleString("en-US") : x}${unit}`);
const met = (ok) => (ok ? "met" : "**missed**");
const mib = (kb) => (kb === null || kb === undefined ? "n/a" : `${fmt(Math.round(kb / 1024))} MiB`);
const ms = (x) => (x === null || x === undefined ? "n/a" : `${fmt(x)} ms`);
/** a / b as "1.23×" (two significant decimals), or "–" when either is missing or b is 0. */
function ratio(a, b) {
  if (typeof a !== "number" || typeof b !== "number" || b === 0) return "–";
  const r = a / b;
  return `${r >= 100 ? Math.round(r).toLocaleString("en-US") : r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}
const ORDER = ["switchboard", "peer", "limit"];
/** A system's restart-test results, one per restart mode, the main one first (older results: one). */
const restartsOf = (s) => s?.scenarios?.restarts ?? (s?.scenarios?.restart ? [s.scenarios.restart] : []);
const mainRestart = (s) => restartsOf(s)[0] ?? null;
const MODE_TITLES = {
  redeploy: "redeploy (its session's and topic's Durable Objects restarted, wrangler dev and its queue kept)",
  reload: "wrangler dev reload (the whole runtime replaced, the local queue's memory with it)",
};
const TITLES = { switchboard: "Switchboard", peer: "Peer (seed architecture)", limit: "Limit (in-memory)" };

export function renderResults(r) {
  // A claims-only results file (the events part never run in this BENCH_OUT).
  if (!r.systems) {
    const lines = ["# Switchboard benchmark results", ""];
    if (r.claims) renderClaims(r.claims, (...xs) => lines.push(...xs));
    return lines.join("\n");
  }
  const systems = ORDER.filter((n) => r.systems[n]).map((n) => r.systems[n]);
  const by = (n) => r.systems[n] ?? null;
  const lines = [];
  const line = (...xs) => lines.push(...xs);
  line("# Switchboard benchmark results: Switchboard, the seed's architecture and the limit", "");
  line(`Measured ${r.date} with \`${r.command}\` (bench/run.mjs; how to run it: bench/README.md). Raw numbers: \`bench/results.json\`.`, "");
  if (r.claims) line("The task queue's claims are measured apart, on a fresh `wrangler dev` (`npm run bench:claims`, or within `npm run bench`): the Claims section at the end, with its own date, command and machine.", "");

  line("## Machine", "");
  line(`- CPUs (\`nproc\`): ${r.machine.nproc}; CPU model: ${r.machine.cpu_model}`);
  line(`- Memory (MemTotal): ${fmt(r.machine.mem_total_kb)} kB (${r.machine.mem_total_gib} GiB); kernel: ${r.machine.kernel}; \`ulimit -n\`: ${r.machine.ulimit_n}`);
  line(`- Node ${r.machine.node}, wrangler ${r.machine.wrangler}, ${r.machine.postgres}, ${r.machine.redis.replace(/ sha=.*/, "")}`);
  line("");

  line("## The systems", "");
  for (const s of systems) line(`- **${s.title ?? TITLES[s.name]}** (\`${s.name}\`): ${s.describe?.what ?? "(did not start)"} Processes: ${s.describe?.processes ?? "n/a"}.`);
  line(
    "",
    "Cores: nothing is pinned. The systems run one after the other, never together, and each shares the machine's " +
      `${r.machine.nproc} cores with the bench client (one sender thread, one or two subscriber threads). ` +
      "Each system gets the same CPUs: Switchboard runs its JavaScript on two single-threaded workerd processes (wrangler's proxy in front, the runtime with the Worker, the DOs and the queue behind it); " +
      "the peer, like the seed, on two single-threaded Node processes (the receiver and one SSE server), plus PostgreSQL's and Redis's processes; the limit on one Node process. " +
      "The client reaches the peer's receiver and SSE server directly (the seed's load balancer routed by path), so the peer has no proxy hop where Switchboard has wrangler's.",
    "",
    `Load, identical for all three: A. ${r.config.concurrency} concurrent senders POST single \`usage.reported\` callbacks back to back for ${r.config.throughputS} s; ` +
      `B. ${r.config.rate} callbacks/s for ${r.config.latencyS} s with ${r.config.subscribers.join(", then ")} SSE subscribers on one topic (a fresh topic each), latency from just before the POST to the arrival of the event at a subscriber (same clock), deliveries that never arrive are lost (no reconnect in B); ` +
      (r.config.restart
        ? `R. the restart test: ${r.config.restartSubscribers} subscribers that reconnect with Last-Event-ID (waiting the server's \`retry:\`), ${r.config.rate} callbacks/s for ${r.config.restartS} s from senders that retry refused or failed POSTs (408, 429, 5xx, network errors) with backoff (100 ms doubling to 2 s, jittered), the system restarted at ${r.config.restartAtS} s the way its production restarts${(r.config.switchboardRestarts ?? []).length > 1 && r.systems.switchboard ? ` (Switchboard once per restart mode: ${r.config.switchboardRestarts.join(", then ")}, each on a fresh topic)` : ""}. `
        : "") +
      "Memory: the summed VmRSS of the system's processes, sampled every 500 ms (PSS too, which splits shared pages instead of counting them once per process: it matters for PostgreSQL's backends, which all map shared_buffers).",
    "",
  );

  line("## Side by side", "");
  const sb = by("switchboard");
  const peer = by("peer");
  const lim = by("limit");
  const cols = [sb, peer, lim];
  const lat = (s, n) => s?.scenarios?.latency?.find((x) => x.subscribers === n) ?? null;
  const rows = [];
  const row = (label, get, show = fmt, ratios = true) => {
    const v = cols.map((s) => {
      try {
        return s ? get(s) : undefined;
      } catch {
        return undefined;
      }
    });
    const cell = (s, x) => (!s ? "not run" : s.error && (x === undefined || x === null) ? "failed" : show(x));
    rows.push(`| ${label} | ${cols.map((s, k) => cell(s, v[k])).join(" | ")} | ${ratios ? ratio(v[0], v[1]) : "–"} | ${ratios ? ratio(v[0], v[2]) : "–"} |`);
  };
  row(`A. Callbacks accepted per second (${r.config.concurrency} senders)`, (s) => s.scenarios.throughput?.accepted_per_s, (x) => `${fmt(x)}/s`);
  if (sb?.scenarios?.throughput_direct) {
    row(`A'. … straight to Switchboard's runtime, without wrangler dev's proxy (the others have none)`, (s) => (s === sb ? s.scenarios.throughput_direct.accepted_per_s : s.scenarios.throughput?.accepted_per_s), (x) => `${fmt(x)}/s`);
  }
  for (const n of r.config.subscribers) {
    row(`B. Delivery p50 at ${r.config.rate}/s, ${fmt(n)} subscribers`, (s) => lat(s, n)?.latency_ms.p50, ms);
    row(`B. Delivery p99 at ${r.config.rate}/s, ${fmt(n)} subscribers`, (s) => lat(s, n)?.latency_ms.p99, ms);
    row(`B. Deliveries lost, ${fmt(n)} subscribers (of ${fmt(n)} × accepted)`, (s) => lat(s, n)?.lost, (x) => fmt(x), false);
  }
  const bd = sb?.scenarios?.latency_direct?.[0];
  if (bd) {
    const pick = (s, k) => (s === sb ? bd.latency_ms[k] : lat(s, bd.subscribers)?.latency_ms[k]);
    row(`B'. Delivery p50 at ${r.config.rate}/s, ${fmt(bd.subscribers)} subscribers, straight to Switchboard's runtime (no dev proxy)`, (s) => pick(s, "p50"), ms);
    row(`B'. Delivery p99 at ${r.config.rate}/s, ${fmt(bd.subscribers)} subscribers, straight to Switchboard's runtime (no dev proxy)`, (s) => pick(s, "p99"), ms);
    row(`B'. Deliveries lost, ${fmt(bd.subscribers)} subscribers, straight to the runtime`, (s) => (s === sb ? bd.lost : lat(s, bd.subscribers)?.lost), (x) => fmt(x), false);
  }
  row("Peak memory, summed RSS of the system's processes", (s) => s.memory?.peak_rss_kb, mib);
  row("Peak memory, summed PSS", (s) => s.memory?.peak_pss_kb, mib);
  if (r.config.restart) {
    const rs = mainRestart;
    const sbMode = sb ? rs(sb)?.mode : null;
    const R = sbMode ? `R. Restart (Switchboard: ${sbMode})` : "R. Restart";
    row(`${R}: until it served again`, (s) => rs(s)?.restart?.ready_ms, ms);
    row(`${R}: streams dropped / resumed with Last-Event-ID`, (s) => rs(s) && `${fmt(rs(s).stream_drops.total)} / ${fmt(rs(s).stream_drops.resumed_with_last_event_id)}`, (x) => x, false);
    row(`${R}: deliveries subscribers missed, after reconnecting`, (s) => rs(s)?.missed_deliveries, fmt, false);
    row(`${R}: accepted events no subscriber received`, (s) => rs(s)?.received_by_nobody.total, fmt, false);
    row(`${R}: accepted events the system no longer has`, (s) => rs(s)?.not_applied, fmt, false);
    row(`${R}: POST retries (events that needed one)`, (s) => rs(s)?.retries, (x) => fmt(x), false);
  }
  line(`| Measure | ${cols.map((s, k) => (s?.title ?? TITLES[ORDER[k]])).join(" | ")} | Switchboard / peer | Switchboard / limit |`);
  line("|---|---|---|---|---|---|");
  line(...rows, "");
  line(
    "Ratios are Switchboard's value divided by the other's: above 1 is better for callbacks per second, worse for latency and memory. " +
      "Counts of losses get no ratio (most are 0). A system that failed shows \"failed\" where it has no number; its error is under its details." +
      (r.config.restart && restartsOf(sb).length > 1 ? ` The R rows show Switchboard's ${mainRestart(sb).mode} restart; its other restart mode${restartsOf(sb).length > 2 ? "s are" : " is"} in the restart test below.` : ""),
    "",
  );
  // The sender is one thread: near a full core, A measures the load generator as much as the system.
  for (const s of cols) {
    const cpu = s?.memory?.phases?.find((p) => p.phase === "A: posting")?.cpu_percent_of_one_core?.["node: bench client (this process)"];
    if (cpu === undefined || cpu < 80) continue;
    line(`Note: during A the bench client (one sender thread) used ${cpu}% of a core against ${s.title}, on a machine of ${r.machine.nproc} cores: that rate is bounded by the load generator as much as by the system.`, "");
  }
  // A system slower than the paced rate is measured overloaded in B and R: say so next to its numbers.
  for (const s of cols) {
    const a = s?.scenarios?.throughput;
    if (!a || a.accepted_per_s >= r.config.rate) continue;
    const b = s.scenarios.latency[0];
    const rs = mainRestart(s);
    line(
      `Note: ${s.title}'s saturation throughput (${fmt(a.accepted_per_s)}/s, A) is below the paced rate (${r.config.rate}/s), so B and R measure it overloaded: requests queue up in the system and latency grows for as long as the run lasts` +
        (b ? ` (in B with ${fmt(b.subscribers)} subscribers, where the sender keeps at most 512 callbacks in flight, it achieved ${fmt(b.rate_achieved_per_s)}/s and sent → applied p50 was ${ms(b.sent_to_applied_ms.p50)})` : "") +
        (rs ? `; in R, whose senders are not capped, a callback waited ${ms(rs.first_send_to_accepted_ms.p50)} (p50) for its 202` : "") +
        ".",
      "",
    );
  }

  if (r.config.restart) renderRestart(r, systems, line);
  if (sb && !sb.error) renderTargets(sb, line);

  line("## Details", "");
  for (const s of systems) renderSystem(r, s, line);
  if (r.claims) renderClaims(r.claims, line);
  return lines.join("\n");
}

function renderRestart(r, systems, line) {
  line("## Restart test", "");
  line("| System | How it was restarted | Down / served again after | Streams dropped (reasons); reconnections resumed with Last-Event-ID | Stream gap p50 / max | Resets | Accepted (sent) | POST retries / events retried / given up / refused | Missed deliveries | Subscribers with every event | Received by nobody (accepted before / during / after the restart) | Applied by the system at the end | Duplicates |");
  line("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  const rowTitle = (s, x) => (x.mode ? `${s.title}: ${MODE_TITLES[x.mode] ?? x.mode}` : s.title);
  for (const s of systems) {
    if (!restartsOf(s).length) {
      line(`| ${s.title ?? s.name} | ${s.error ? `failed: ${s.error.split("\n")[0]}` : "not run"} |||||||||||| `);
      continue;
    }
    for (const x of restartsOf(s)) {
      const rs = x.restart ?? {};
      const down = rs.old_runtime_gone_ms !== undefined ? `old runtime gone ${fmt(rs.old_runtime_gone_ms)} ms` : rs.stopped_ms !== undefined ? `stopped in ${fmt(rs.stopped_ms)} ms` : rs.admin_answered_ms !== undefined ? `admin call answered ${fmt(rs.admin_answered_ms)} ms` : "";
      const nob = x.received_by_nobody;
      const resumed = x.stream_drops.resumed_with_last_event_id;
      line(
        `| ${rowTitle(s, x)} | ${rs.error ? `failed: ${rs.error}` : rs.how} | ${down} / ${ms(rs.ready_ms)} | ${fmt(x.stream_drops.total)} (${Object.entries(x.stream_drops.reasons).map(([k, v]) => `${k}: ${v}`).join("; ") || "none"})${resumed === undefined ? "" : `; ${fmt(resumed)} resumed`} | ${ms(x.time_without_stream_ms.p50)} / ${ms(x.time_without_stream_ms.max)} | ${fmt(x.stream_drops.resets)} | ${fmt(x.accepted)} (${fmt(x.sent)}) | ${fmt(x.retries)} / ${fmt(x.events_retried)} / ${fmt(x.gave_up)} / ${fmt(x.refused)} | ${fmt(x.missed_deliveries)} of ${fmt(x.expected_deliveries)} | ${fmt(x.subscribers_with_every_event)} of ${fmt(x.subscribers)} | ${fmt(nob.total)} (${fmt(nob.accepted_before_restart)} / ${fmt(nob.accepted_during_restart)} / ${fmt(nob.accepted_after_restart)}) | ${fmt(x.applied_by_system_at_end)} of ${fmt(x.accepted)} | ${fmt(x.duplicates)} |`,
      );
    }
  }
  line(
    "",
    "Resets: reconnections answered with `event: reset` and a fresh snapshot because their Last-Event-ID could not be replayed (Switchboard's hubs and the limit keep the last 1,000 events; after the limit's restart the ids start over); the events in between are missed. " +
      "\"Received by nobody\" counts accepted events that no subscriber got even after reconnecting, by when their 2xx arrived relative to the restart (from the trigger to the system serving again); \"applied by the system\" is its own counter (the topic's bash calls) once it stopped moving.",
    "",
  );
  for (const s of systems) {
    for (const x of restartsOf(s)) {
      line(
        `- ${x.mode ? `${s.title}, ${x.mode}` : s.title}: restart triggered ${fmt(x.restart_at_ms)} ms into the paced run with ${fmt(x.accepted_when_restart_triggered)} accepted; sent at ${fmt(x.rate_achieved_per_s)}/s (at most ${fmt(x.sender_max_behind_schedule_ms)} ms behind schedule); POST statuses ${JSON.stringify(x.statuses)}` +
          `${Object.keys(x.network_errors).length ? `, network errors ${JSON.stringify(x.network_errors)}` : ""}; first send → 2xx p50 ${ms(x.first_send_to_accepted_ms.p50)}, p99 ${ms(x.first_send_to_accepted_ms.p99)}, max ${ms(x.first_send_to_accepted_ms.max)}. ` +
          `Delivery latency over the whole run (replays included) p50 ${ms(x.latency_ms.p50)}, p99 ${ms(x.latency_ms.p99)}; reconnect answers ${JSON.stringify(x.stream_drops.reconnect_statuses)}; streams still down at the end ${x.stream_drops.still_down_at_end}; events received by some subscribers but not all ${fmt(x.received_by_some_not_all)}.` +
          (x.stream_drops.subscribers_dropped !== undefined ? ` ${fmt(x.stream_drops.subscribers_dropped)} of ${fmt(x.subscribers)} subscribers lost their stream; ${fmt(x.stream_drops.resumed_with_last_event_id)} reconnections resumed with Last-Event-ID, ${fmt(x.stream_drops.reopened_without_last_event_id)} reopened without one (nothing received yet).` : ""),
      );
    }
  }
  line("");
  const sb = systems.find((s) => s.name === "switchboard");
  if (restartsOf(sb).length) renderSwitchboardRestarts(sb, line);
}

/** How Switchboard's redeploy is reproduced (each restart mode that ran), and what is not. */
function renderSwitchboardRestarts(sb, line) {
  const q = sb.queue_check;
  const runs = restartsOf(sb);
  const redeploy = runs.find((x) => x.mode === "redeploy");
  // Results from before the restart modes: one run, the reload.
  const reload = runs.find((x) => x.mode === "reload" || !x.mode);
  const them = (n) => (n === 1 ? "it" : "them");
  const outcome = (x) =>
    `${fmt(x.stream_drops.total)} stream drops (${fmt(x.stream_drops.subscribers_dropped ?? x.stream_drops.total)} of ${fmt(x.subscribers)} subscribers)` +
    (x.stream_drops.resumed_with_last_event_id !== undefined ? `, ${fmt(x.stream_drops.resumed_with_last_event_id)} reconnections resumed with Last-Event-ID` : "") +
    `, ${fmt(x.stream_drops.resets)} answered with a reset; ${fmt(x.missed_deliveries)} of ${fmt(x.expected_deliveries)} deliveries missed after reconnecting, ${fmt(x.received_by_nobody.total)} accepted events received by no subscriber, ${fmt(x.not_applied)} accepted events the system no longer has, ${fmt(x.duplicates)} duplicates` +
    (x.queue_retries_logged !== undefined ? `; ${fmt(x.queue_retries_logged)} queue messages failed and were retried (the consumer's warn lines in wrangler's log)` : "");
  const queueProof =
    q && !q.error
      ? `The bench shows this on a tiny Worker (bench/queue-reload/worker.js) with the same config touch: of ${fmt(q.messages_per_batch)} messages waiting ${q.delay_s} s in the queue, ${fmt(q.control_acked)} were acknowledged without a reload and ${fmt(q.acked_after_reload)} with one; the Durable Object's SQLite count ${q.do_state_kept ? "survived" : "did not survive"} the reload. `
      : q?.error
        ? `(The queue check, which shows this on a tiny Worker, failed: ${q.error}.) `
        : "(The queue check, which shows this on a tiny Worker, did not run.) ";

  line("### How Switchboard's redeploy is reproduced, and what is not", "");
  line(
    "On Cloudflare a deploy starts the Worker in new isolates and resets every Durable Object (at once, or, with the default code update strategy, once the object is idle or a maximum delay has passed: an object holding SSE streams is not idle): their open SSE streams drop and their memory is gone, while their SQLite storage, D1 and R2 stay. " +
      "Cloudflare Queues keep every message not yet acknowledged and deliver it to the new version (a batch whose processing failed is retried: at least once; the hubs apply each event id once). " +
      `The run restarts Switchboard ${runs.length > 1 ? `in ${runs.length} ways, one after the other on a fresh topic each (${runs.map((x) => x.mode ?? "reload").join(", then ")})` : "one way"}, under the same load and with the same reconnecting subscribers as the peer and the limit.`,
    "",
  );
  if (redeploy) {
    const rs = redeploy.restart ?? {};
    line(
      `**redeploy**${runs[0] === redeploy ? " (the main one: the R rows of the side-by-side table)" : ""}: the Worker's admin endpoint \`POST /v1/admin/teams/{team_id}/hubs/restart\` (src/routes/admin.ts) calls \`restart()\` on the run's session and topic Durable Objects (durable-objects/hub.ts), which \`ctx.abort()\`s each one as a deploy resets it: its open SSE streams drop, its memory is discarded, and the next request loads it anew from its SQLite; a queue batch the topic's hub was applying at that moment fails and the queue retries it. ` +
        `wrangler dev, its queue simulator with the messages waiting in it, local D1 and the Worker isolate keep running (the runtime workerd process was ${rs.runtime_kept ? `the same before and after, pid ${rs.runtime_pid_before}` : rs.error ? "not checked: the restart failed" : `**not** the same: pid ${rs.runtime_pid_before} before, ${rs.runtime_pid_after} after`}). ` +
        (rs.error ? `The restart failed: ${rs.error}. ` : `The admin call answered in ${ms(rs.admin_answered_ms)} and the topic's hub served a read again ${ms(rs.ready_ms)} after the trigger. `) +
        `Outcome: ${outcome(redeploy)}.`,
      "",
    );
    line(
      "What the redeploy mode does not reproduce: the Worker isolate's own restart. The isolate holds only caches (nothing an accepted callback or a stream depends on), so restarting it would add a cold start and cache misses, not a loss; on a real deploy, requests in flight finish on the old version while new ones reach the new version, here they simply continue on the one isolate. " +
        "Only the run's session and topic objects are reset, not every object of the namespace (the run's other topics are idle by then), and at a moment the bench picks, all at once on one machine: not a deploy's gradual rollout across Cloudflare's locations, its deferred resets, or the time Cloudflare takes to start the new version.",
      "",
    );
  }
  if (reload) {
    const lost = reload.not_applied;
    line(
      `**${reload.mode ? "reload" : "wrangler dev reload"}**${runs[0] === reload ? " (the R rows of the side-by-side table)" : " (a second row, for comparison)"}: wrangler dev's own reload. Switchboard is started with a copy of wrangler.toml (paths made absolute; the project's files are never touched), and at the restart the bench touches that copy: ` +
        "wrangler dev rebuilds the Worker and Miniflare SIGKILLs its runtime workerd process (the Worker, the Durable Objects, local D1 and the queue simulator all live there) and starts a new one on the same `--persist-to` directory, " +
        "while wrangler's proxy workerd keeps the public port and holds new requests until the new runtime answers (a request in flight in the old runtime is retried by the proxy if it is a GET, and fails if it is a POST: the bench's senders retry it). " +
        "That resets the Worker and the DOs as a deploy does, and more: wrangler dev's queue simulator keeps its messages in the runtime process's memory (a Durable Object inside Miniflare holding them in an in-memory list), so the SIGKILL loses every message not yet acknowledged, including a batch the consumer was applying; Cloudflare Queues would keep and deliver them. " +
        queueProof +
        "Killing wrangler dev and starting it again would lose the same messages (and refuse requests while it is down), so it is no more faithful. " +
        `Outcome: ${outcome(reload)}. ` +
        `Any accepted event the system no longer has after a reload was in that queue (the only place an accepted event lives outside the hubs' SQLite): ${lost ? `the ${fmt(lost)} here are the local queue simulator's gap, not Switchboard's; a real redeploy would have delivered ${them(lost)}` : "none in this run (no accepted event was still waiting in the queue, unapplied, when the runtime was killed), which a reload does not guarantee"}.`,
      "",
    );
  }
}

function renderTargets(s, line) {
  const a = s.scenarios.throughput;
  const b100 = s.scenarios.latency.find((x) => x.subscribers === 100);
  const b1000 = s.scenarios.latency.find((x) => x.subscribers === 1000);
  line("## Switchboard against the issue's targets", "");
  line("| Measure | Target (issue) | Measured | |");
  line("|---|---|---|---|");
  if (a) line(`| Callbacks accepted (202) per second, ${a.concurrency} concurrent senders, ${Math.round(a.duration_ms / 1000)} s | 500/s | ${fmt(a.accepted_per_s)}/s | ${met(a.accepted_per_s >= TARGETS.accepted_per_s)} |`);
  if (b100) {
    line(`| p99 delivery at ${b100.rate_target_per_s}/s, 100 subscribers | under 250 ms | ${ms(b100.latency_ms.p99)} (p50 ${ms(b100.latency_ms.p50)}) | ${met(b100.latency_ms.p99 !== null && b100.latency_ms.p99 < TARGETS.p99_ms_100 && b100.lost === 0)} |`);
    line(`| Events lost, 100 subscribers | 0 | ${fmt(b100.lost)} of ${fmt(b100.expected_deliveries)} deliveries | ${met(b100.lost === 0)} |`);
  }
  if (b1000) {
    line(`| 1,000 concurrent subscribers on one topic, each receiving every event | every subscriber gets every event | ${fmt(b1000.subscribers_with_every_event)} of 1,000 got every event; ${fmt(b1000.lost)} of ${fmt(b1000.expected_deliveries)} deliveries lost | ${met(b1000.every_subscriber_got_every_event)} |`);
  }
  line("");
}

function renderSystem(r, s, line) {
  line(`### ${s.title ?? s.name}`, "");
  if (s.error) line("Failed:", "", "```", s.error, "```", "");
  if (s.base) line(`API on ${s.base}${s.stream_base && s.stream_base !== s.base ? `, streams on ${s.stream_base}` : ""}. Logs: ${s.describe?.log ?? s.describe?.logs ?? "n/a"} (kept after the run).`, "");
  const a = s.scenarios?.throughput;
  if (a) {
    line(
      `- A. Sent ${fmt(a.sent)} callbacks in ${fmt(a.duration_ms)} ms; ${fmt(a.accepted)} accepted (${fmt(a.accepted_per_s)}/s); statuses ${JSON.stringify(a.statuses)}; network errors ${a.network_errors}. POST latency p50 ${ms(a.request_latency_ms.p50)}, p99 ${ms(a.request_latency_ms.p99)}, max ${ms(a.request_latency_ms.max)}. ` +
        (a.drain.drained ? `All ${fmt(a.drain.applied)} applied ${fmt(a.drain.ms_from_first_post)} ms after the first post (${fmt(a.drain.applied_per_s)} applied/s end to end).` : `${fmt(a.drain.applied)} of ${fmt(a.accepted)} applied when the drain wait ran out, ${fmt(a.drain.ms_from_first_post)} ms after the first post.`) +
        (a.first_errors.length ? ` First refusals/errors: ${a.first_errors.map((e) => `\`${e.replace(/`/g, "'")}\``).join("; ")}` : ""),
    );
  }
  const lat = s.scenarios?.latency ?? [];
  if (lat.length) {
    line("", "| B. Subscribers | Sent at (target / achieved) | Accepted | Deliveries (expected / received) | Lost | p50 | p90 | p99 | max | Every subscriber got every event | Streams ended early | sent → applied p50 / p99 | applied → delivered p50 / p99 |");
    line("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (const x of lat) {
      line(
        `| ${fmt(x.subscribers)} | ${x.rate_target_per_s}/s / ${fmt(x.rate_achieved_per_s)}/s | ${fmt(x.accepted)} of ${fmt(x.sent)} | ${fmt(x.expected_deliveries)} / ${fmt(x.delivered)} | ${fmt(x.lost)} | ${ms(x.latency_ms.p50)} | ${ms(x.latency_ms.p90)} | ${ms(x.latency_ms.p99)} | ${ms(x.latency_ms.max)} | ${x.every_subscriber_got_every_event ? "yes" : "no"} (${fmt(x.subscribers_with_every_event)} of ${fmt(x.subscribers)}) | ${fmt(x.streams_ended_early)} | ${fmt(x.sent_to_applied_ms.p50)} / ${ms(x.sent_to_applied_ms.p99)} | ${fmt(x.applied_to_delivered_ms.p50)} / ${ms(x.applied_to_delivered_ms.p99)} |`,
      );
    }
    line("");
    for (const x of lat) {
      const ends = x.stream_ends_s_after_first_post;
      line(
        `- ${fmt(x.subscribers)} subscribers: ${fmt(x.streams_open)} streams opened (each with its snapshot) in ${fmt(x.open_ms)} ms${x.streams_failed_to_open ? `, ${x.streams_failed_to_open} failed (${x.open_failures.join("; ")})` : ""}. ` +
          (ends ? `${fmt(x.streams_ended_early)} streams were closed by the server before the end (\`${x.stream_end_reasons.join("; ")}\`), ${ends.min}–${ends.max} s after the first paced callback, having received ${x.received_before_end.min}–${x.received_before_end.max} events each. ` : "") +
          `Applied when posting ended ${fmt(x.applied_by_topic_hub.after_posting)}, when the wait ended ${fmt(x.applied_by_topic_hub.after_wait)} (after ${fmt(x.collect_waited_ms)} ms, at most ${fmt(x.collect_wait_ms)} ms). Duplicates ${fmt(x.duplicates)}; POST statuses ${JSON.stringify(x.statuses)}, network errors ${x.network_errors}${x.post_answer_ms ? `; POST → answer p50 ${ms(x.post_answer_ms.p50)}, p99 ${ms(x.post_answer_ms.p99)}` : ""}${x.hub_streams_after_close !== undefined ? `; after the clients closed their streams the topic's hub still held ${fmt(x.hub_streams_after_close)} (through wrangler's proxy it is never told, cloudflare/workers-sdk#9438; straight to the runtime, only at its next write) and the bench restarted it before the next phase` : ""}; the sender was at most ${fmt(x.sender_max_behind_schedule_ms)} ms behind its schedule. ` +
          `Client event-loop delay p99: sender ${x.client_event_loop_delay_ms.sender.p99} ms, subscriber thread(s) ${x.client_event_loop_delay_ms.subscriber_threads.map((l) => `${l.p99} ms`).join(" / ")}.`,
      );
    }
    line("", "\"applied\" is the system's own time stamp in each envelope (`received_at`): the TopicHub's apply time for Switchboard, the receiver's commit for the peer, the POST's handling for the limit.");
  }
  const m = s.memory;
  if (m) {
    line(
      "",
      `Memory and CPU by phase (sampled every ${m.interval_ms} ms). Peak summed RSS ${mib(m.peak_rss_kb)} over ${m.processes_at_peak} processes, PSS ${mib(m.peak_pss_kb)}; per kind of process (peak RSS): ${Object.entries(m.per_label_peak_rss_kb).map(([l, kb]) => `${l} ${mib(kb)}`).join("; ")}` +
        `${Object.keys(m.not_counted_peak_rss_kb ?? {}).length ? `; not counted (dev tooling): ${Object.entries(m.not_counted_peak_rss_kb).map(([l, kb]) => `${l} ${mib(kb)}`).join("; ")}` : ""}. ` +
        `CPU is each kind of process's user+system time over the phase's wall time, in % of one core (this machine has ${r.machine.nproc}); it is "–" for phases under a second.`,
      "",
    );
    const labels = [...new Set(m.phases.flatMap((p) => Object.keys(p.cpu_percent_of_one_core)))];
    line(`| Phase | Wall | Peak RSS | Peak PSS | ${labels.map((l) => `CPU ${l}`).join(" | ")} |`);
    line(`|---|---|---|---|${labels.map(() => "---|").join("")}`);
    for (const p of m.phases) line(`| ${p.phase} | ${p.wall_s} s | ${mib(p.peak_rss_kb)} | ${mib(p.peak_pss_kb)} | ${labels.map((l) => (p.cpu_percent_of_one_core[l] === undefined || p.wall_s < 1 ? "–" : `${p.cpu_percent_of_one_core[l]}%`)).join(" | ")} |`);
  }
  line("");
}
