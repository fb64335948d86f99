#!/usr/bin/env node
// `npm run bench`: measures, one after the other on this machine and with the same load
// generator, payloads and subscriber counts, three systems (bench/lib/systems.mjs):
//   switchboard — the Worker under `wrangler dev` (fresh local state);
//   peer        — the seed system's architecture: Node receiver → PostgreSQL + Redis pub/sub
//                 → Node SSE server (bench/peers/), PostgreSQL and Redis started by the bench;
//   limit       — one Node process broadcasting from memory (bench/peers/limit.mjs);
// and for each:
//   A. callbacks accepted per second (32 concurrent senders, 10 s);
//   B. callback-to-SSE delivery latency at 200 callbacks/s for 15 s with 100, then 1,000
//      subscribers on one topic (a fresh topic each), and events lost;
//   R. the restart test: 100 subscribers that reconnect with Last-Event-ID, callbacks at
//      200/s for 30 s from senders that retry, the system restarted at 10 s; Switchboard
//      twice, on a fresh topic each: "redeploy" (its session's and topic's Durable Objects
//      restarted through the admin endpoint, wrangler dev and its queue kept running: the
//      main one) and "reload" (wrangler dev's reload, which also empties the local queue);
// and the peak memory of the system's processes (the "events" part); then the task queue's
// claims on a fresh Switchboard (the "claims" part, bench/lib/claims-run.mjs, alone:
// `npm run bench:claims`); writes bench/RESULTS.md and bench/results.json, keeping from the
// results.json already there the part not run (BENCH_PARTS).
//
// Linux only (/proc). The peer needs Debian's postgresql and redis-server (bash
// bench/setup.sh). 1,000 streams need ~1,100 file descriptors in this process and several
// times that in wrangler dev's workerd (with `ulimit -n` 4096 it ran out at ~860 streams and
// crashed): the bench refuses to start under MIN_OPEN_FILES. Everything listens
// and is reached on 127.0.0.1, and is stopped at the end, on failure and on Ctrl-C.
// Overrides, for quick runs: BENCH_PARTS ("events,claims"; the claims part's own overrides,
// BENCH_CLAIMS_*, are listed in bench/claims.mjs), BENCH_NOTE (a warning shown above the
// claims' numbers), BENCH_SYSTEMS ("switchboard,peer,limit"), BENCH_PORT (8791,
// Switchboard's), BENCH_SUBSCRIBERS ("100,1000"), BENCH_RATE (200), BENCH_LATENCY_S (15),
// BENCH_THROUGHPUT_S (10), BENCH_CONCURRENCY (32), BENCH_RESTART (1; 0 skips R),
// BENCH_RESTART_S (30), BENCH_RESTART_AT_S (10), BENCH_RESTART_SUBSCRIBERS (100),
// BENCH_SWITCHBOARD_RESTARTS ("redeploy,reload": Switchboard's restart modes in R, in order,
// the first one in the side-by-side table),
// BENCH_QUEUE_CHECK (1; 0 skips the ~25 s check of what a reload does to the local queue),
// BENCH_RESTART_SIGNAL (SIGKILL; SIGTERM stops the peer's and the limit's processes gracefully),
// BENCH_WRANGLER_LOG_LEVEL (warn), X_LOCAL_OBSERVABILITY (false), BENCH_LOG_LEVEL (warn: the
// Worker's LOG_LEVEL; the peer and the limit write no line per request either), BENCH_WATCHDOG_MIN (45),
// BENCH_OUT (where RESULTS.md and results.json go; bench/ by default).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { claimsConfig, measureClaims } from "./lib/claims-run.mjs";
import { expectJson } from "./lib/http.mjs";
import { machine } from "./lib/machine.mjs";
import { queueReloadCheck } from "./lib/queue-check.mjs";
import { restartTest } from "./lib/restart.mjs";
import { commandLine, mergeResults, readResults, writeResults } from "./lib/results-file.mjs";
import { startSystemSampler } from "./lib/sampler.mjs";
import { latency, throughput } from "./lib/scenarios.mjs";
import { postgresBin } from "./lib/services.mjs";
import { missingServices } from "./lib/services.mjs";
import { SYSTEMS } from "./lib/systems.mjs";
import { wranglerVersion } from "./lib/wrangler.mjs";

const root = new URL("..", import.meta.url).pathname;
const outDir = process.env.BENCH_OUT ?? new URL(".", import.meta.url).pathname;
const host = "127.0.0.1";
const env = (name, fallback) => process.env[name] ?? fallback;
const PARTS = ["events", "claims"];
const parts = env("BENCH_PARTS", PARTS.join(",")).split(",").map((s) => s.trim()).filter(Boolean);
if (!parts.length || parts.some((p) => !PARTS.includes(p))) {
  console.error(`BENCH_PARTS: ${parts.length ? `unknown ${parts.filter((p) => !PARTS.includes(p)).join(", ")}` : "empty"} (known: ${PARTS.join(", ")})`);
  process.exit(2);
}
let claims;
try {
  claims = parts.includes("claims") ? claimsConfig() : null;
} catch (e) {
  console.error(e.message);
  process.exit(2);
}
const config = {
  systems: env("BENCH_SYSTEMS", "switchboard,peer,limit").split(",").map((s) => s.trim()).filter(Boolean),
  port: Number(env("BENCH_PORT", 8791)),
  subscribers: env("BENCH_SUBSCRIBERS", "100,1000").split(",").map(Number).filter((n) => n > 0),
  rate: Number(env("BENCH_RATE", 200)),
  latencyS: Number(env("BENCH_LATENCY_S", 15)),
  throughputS: Number(env("BENCH_THROUGHPUT_S", 10)),
  concurrency: Number(env("BENCH_CONCURRENCY", 32)),
  restart: env("BENCH_RESTART", "1") !== "0",
  restartS: Number(env("BENCH_RESTART_S", 30)),
  restartAtS: Number(env("BENCH_RESTART_AT_S", 10)),
  restartSubscribers: Number(env("BENCH_RESTART_SUBSCRIBERS", 100)),
  switchboardRestarts: env("BENCH_SWITCHBOARD_RESTARTS", "redeploy,reload").split(",").map((s) => s.trim()).filter(Boolean),
  queueCheck: env("BENCH_QUEUE_CHECK", "1") !== "0",
  restartSignal: env("BENCH_RESTART_SIGNAL", "SIGKILL"),
  // wrangler dev's per-request log lines and its local trace store (X_LOCAL_OBSERVABILITY,
  // off unless set) are dev-only costs with no counterpart in production: measured at about
  // 0.6 ms and 1 ms of this machine's CPU per callback, they are left out by default.
  logLevel: env("BENCH_WRANGLER_LOG_LEVEL", "warn"),
};
const unknown = config.systems.filter((s) => !SYSTEMS[s]);
if (unknown.length) {
  console.error(`BENCH_SYSTEMS: unknown ${unknown.join(", ")} (known: ${Object.keys(SYSTEMS).join(", ")})`);
  process.exit(2);
}
const SWITCHBOARD_RESTARTS = ["redeploy", "reload"];
const badModes = config.switchboardRestarts.filter((m) => !SWITCHBOARD_RESTARTS.includes(m));
if (badModes.length || !config.switchboardRestarts.length) {
  console.error(`BENCH_SWITCHBOARD_RESTARTS: ${badModes.length ? `unknown ${badModes.join(", ")}` : "empty"} (known: ${SWITCHBOARD_RESTARTS.join(", ")})`);
  process.exit(2);
}
const WATCHDOG_MS = Number(env("BENCH_WATCHDOG_MIN", 45)) * 60_000;

const t0 = Date.now();
const log = (msg) => console.log(`[bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}`);

const work = mkdtempSync(join(tmpdir(), "switchboard-bench-"));
let system = null;
let sampler = null;

async function shutdown(code) {
  sampler?.stop();
  sampler = null;
  if (system) {
    log(`stopping ${system.name}`);
    const s = system;
    system = null;
    await s.stop().catch((e) => console.error(`stopping ${s.name}: ${e.message}`));
  }
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(130));
process.on("SIGTERM", () => void shutdown(143));
process.on("SIGHUP", () => void shutdown(129));
const watchdog = setTimeout(() => {
  console.error(`bench: still running after ${WATCHDOG_MS / 60_000} min, giving up`);
  void shutdown(1);
}, WATCHDOG_MS);
watchdog.unref();

const version = (cmd, args) => (spawnSync(cmd, args, { encoding: "utf8" }).stdout ?? "").trim().split("\n")[0] || "not installed";

/** One system: start, set up, A, B for each subscriber count, R, stop. */
async function measure(name) {
  // restarts: one R result per restart mode (one for the peer and the limit), the first the main one.
  const out = { name, error: null, scenarios: { throughput: null, latency: [], restarts: [] }, memory: null };
  const phase = (p) => sampler?.phase(p);
  try {
    system = await SYSTEMS[name]({ root, work, host, port: config.port, logLevel: config.logLevel, restartSignal: config.restartSignal, log });
    Object.assign(out, { title: system.title, base: system.base, stream_base: system.streamBase, describe: system.describe });
    sampler = startSystemSampler(system.processes, 500);
    const base = system.base;
    const run = `b${Date.now().toString(36)}`;
    const team = await expectJson(base, "POST", "/v1/admin/teams", 201, { token: system.adminToken, body: JSON.stringify({ name: `bench ${run}` }) });
    const key = team.api_key;
    const sid = `bench-${run}`;
    await expectJson(base, "POST", "/v1/sessions", 201, { token: key, body: JSON.stringify({ id: sid, title: "benchmark" }) });
    const topic = async (tid) => (await expectJson(base, "POST", `/v1/sessions/${sid}/topics`, 201, { token: key, body: JSON.stringify({ id: tid }) })).id;
    // Switchboard: the streams a B phase's hub still holds after its clients closed them, then
    // that hub restarted, so they do not load the next phase (systems.mjs, releaseStreams).
    const releaseStreams = async (result, tid) => {
      if (!system.releaseStreams) return;
      result.hub_streams_after_close = await system.releaseStreams({ teamId: team.team_id, sid, tid });
      log(`  the topic's hub still held ${result.hub_streams_after_close} of the ${result.subscribers} streams after their clients closed them; restarted it`);
    };
    log(`team ${team.team_id}, session ${sid}`);

    log(`A. throughput: ${config.concurrency} concurrent senders for ${config.throughputS} s`);
    out.scenarios.throughput = await throughput({ base, key, sid, tid: await topic("throughput"), prefix: `${run}-a-`, concurrency: config.concurrency, durationMs: config.throughputS * 1000, log, phase });
    // Switchboard again, straight to its runtime: what wrangler dev's proxy costs.
    const direct = await system.directBase?.();
    if (direct) {
      log(`A'. throughput straight to the runtime (${direct}), without wrangler dev's proxy`);
      out.scenarios.throughput_direct = await throughput({ base: direct, key, sid, tid: await topic("throughput-direct"), prefix: `${run}-ad-`, concurrency: config.concurrency, durationMs: config.throughputS * 1000, log, phase: (p) => phase(p.replace("A:", "A':")) });
    } else if (system.directBase) log("A'. skipped: the runtime's own port was not found");

    for (const [k, n] of config.subscribers.entries()) {
      log(`B. latency: ${n} subscribers, ${config.rate} callbacks/s for ${config.latencyS} s`);
      const tid = await topic(`latency-${n}`);
      // Let the queue drain before the next scenario (none after the last one when R is off).
      const more = k < config.subscribers.length - 1 || config.restart;
      const b = await latency({ base, streamBase: system.streamBase, key, sid, tid, prefix: `${run}-b${n}-`, subscribers: n, threads: n > 200 ? 2 : 1, ratePerS: config.rate, durationMs: config.latencyS * 1000, drainTimeoutMs: more ? 60_000 : 0, log, phase });
      await releaseStreams(b, tid);
      out.scenarios.latency.push(b);
    }
    // And the first subscriber count again straight to the runtime (callbacks and streams).
    const [firstN] = config.subscribers;
    if (direct && firstN) {
      log(`B'. latency straight to the runtime: ${firstN} subscribers, ${config.rate} callbacks/s for ${config.latencyS} s`);
      const tid = await topic(`latency-direct-${firstN}`);
      const b = await latency({ base: direct, streamBase: direct, key, sid, tid, prefix: `${run}-bd${firstN}-`, subscribers: firstN, threads: firstN > 200 ? 2 : 1, ratePerS: config.rate, durationMs: config.latencyS * 1000, drainTimeoutMs: 60_000, log, phase: (p) => phase(p.replace(/^B /, "B' ")) });
      await releaseStreams(b, tid);
      out.scenarios.latency_direct = [b];
    }

    if (config.restart) {
      const n = config.restartSubscribers;
      // Each mode on a fresh topic; restartTest waits for the system to apply before it returns.
      const modes = system.restartModes ? config.switchboardRestarts : [null];
      for (const mode of modes) {
        log(`R. restart${mode ? ` (${mode})` : ""}: ${n} reconnecting subscribers, ${config.rate} callbacks/s for ${config.restartS} s, restart at ${config.restartAtS} s`);
        const tid = await topic(mode ? `restart-${mode}` : "restart");
        const retriesBefore = system.queueRetriesLogged?.() ?? null;
        const x = await restartTest({ system, mode, teamId: team.team_id, base, streamBase: system.streamBase, key, sid, tid, prefix: `${run}-r${mode ? `-${mode}` : ""}-`, subscribers: n, threads: n > 200 ? 2 : 1, ratePerS: config.rate, durationMs: config.restartS * 1000, restartAtMs: config.restartAtS * 1000, log, phase });
        // Switchboard: queue messages that failed (a batch the restart interrupted) and were retried.
        const retriesAfter = system.queueRetriesLogged?.() ?? null;
        if (retriesBefore !== null && retriesAfter !== null) {
          x.queue_retries_logged = retriesAfter - retriesBefore;
          log(`  queue messages failed and retried (the Worker's warn log): ${x.queue_retries_logged}`);
        }
        out.scenarios.restarts.push(x);
      }
    }
  } catch (e) {
    out.error = String(e?.stack ?? e);
    console.error(`bench: ${name} failed: ${out.error}`);
  } finally {
    out.memory = sampler?.stop() ?? null;
    sampler = null;
    if (out.memory) log(`${name}: peak RSS ${Math.round(out.memory.peak_rss_kb / 1024)} MiB (PSS ${Math.round(out.memory.peak_pss_kb / 1024)} MiB)`);
    if (system) {
      log(`stopping ${name}`);
      const s = system;
      system = null;
      await s.stop().catch((e) => console.error(`stopping ${name}: ${e.message}`));
    }
  }
  if (name === "switchboard" && config.queueCheck && config.restart) {
    log("what a reload does to wrangler dev's local queue (a tiny Worker, bench/queue-reload/)");
    out.queue_check = await queueReloadCheck({ root, work, host, log }).catch((e) => ({ error: String(e?.message ?? e) }));
  }
  return out;
}

const command = commandLine("bench");

/** Descriptors 1,000 streams need across this process and wrangler dev's workerd (measured: 4,096 is too few). */
const MIN_OPEN_FILES = 8192;

async function main() {
  const openFiles = Number(execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).trim());
  if (parts.includes("events") && Math.max(...config.subscribers) >= 1000 && openFiles < MIN_OPEN_FILES) {
    throw new Error(`ulimit -n is ${openFiles}: 1,000 streams need at least ${MIN_OPEN_FILES} open files (run \`ulimit -n ${MIN_OPEN_FILES}\` or more first)`);
  }
  // Checked before the first system, not when the peer's turn comes minutes later.
  const missing = parts.includes("events") && config.systems.includes("peer") ? missingServices() : null;
  if (missing) throw new Error(missing);
  log(`temp dir ${work} (logs of every system stay there); parts: ${parts.join(", ")}${parts.includes("events") ? `; systems: ${config.systems.join(", ")}` : ""}`);
  const events = parts.includes("events") ? await measureEvents() : null;
  let measuredClaims = null;
  if (claims) {
    log("=== claims (the task queue, on a fresh Switchboard)");
    measuredClaims = await measureClaims({ root, work, host, port: config.port, logLevel: config.logLevel, log, config: claims, command, note: env("BENCH_NOTE", "") || null, register: (x) => ({ system, sampler } = x) });
  }
  writeResults(outDir, mergeResults(readResults(outDir), { events, claims: measuredClaims }));
  log(`wrote ${join(outDir, "RESULTS.md")} and results.json${parts.length < PARTS.length ? ` (the ${PARTS.filter((p) => !parts.includes(p)).join(", ")} part kept from the results.json there)` : ""}`);
  return Object.values(events?.systems ?? {}).some((s) => s.error) || measuredClaims?.error ? 1 : 0;
}

/** The events part: every system of BENCH_SYSTEMS, one after the other; its results are results.json's top level. */
async function measureEvents() {
  const pgBin = postgresBin();
  const results = {
    date: new Date().toISOString(),
    command,
    machine: {
      ...machine({ wranglerVersion: wranglerVersion(root) }),
      postgres: pgBin ? version(join(pgBin, "postgres"), ["--version"]) : "not installed",
      redis: version("redis-server", ["--version"]),
      ulimit_n: version("sh", ["-c", "ulimit -n"]),
    },
    config,
    systems: {},
  };
  for (const name of config.systems) {
    log(`=== ${name}`);
    results.systems[name] = await measure(name);
  }
  return results;
}

try {
  await shutdown(await main());
} catch (e) {
  console.error(`bench failed: ${e?.stack ?? e}`);
  await shutdown(1);
}
