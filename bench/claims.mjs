#!/usr/bin/env node
// `npm run bench:claims`: the task queue's claims alone (issue 4), on Switchboard under
// `wrangler dev` with fresh local state (bench/lib/claims-run.mjs; the scenarios in
// bench/lib/claims.mjs):
//   T. claims per second: BENCH_CLAIMS_TASKS tasks created first, then BENCH_CLAIMS_WORKERS
//      workers loop claim → complete until the queue answers 204; zero double claims checked
//      by the client (every task id claimed exactly once) and by the server at the end;
//   L. created → claimed latency p50/p99: the workers poll claim while a producer creates
//      BENCH_CLAIMS_RATE tasks/s for BENCH_CLAIMS_LATENCY_S s;
// each through wrangler dev's proxy, then straight to the runtime's own port. Writes the
// Claims section of bench/RESULTS.md and `claims` in bench/results.json, keeping the other
// sections from the results.json already there. `npm run bench` runs the same part after
// the systems side by side (BENCH_PARTS chooses).
// Overrides: BENCH_CLAIMS_TASKS (5000), BENCH_CLAIMS_WORKERS (16), BENCH_CLAIMS_CREATE_CONCURRENCY
// (16), BENCH_CLAIMS_RATE (50), BENCH_CLAIMS_LATENCY_S (20), BENCH_CLAIMS_POLL_MS (10: the
// sleep after a 204 in L), BENCH_CLAIMS_SCENARIOS ("throughput,latency"), BENCH_CLAIMS_DIRECT
// (1; 0 skips the runs straight to the runtime), BENCH_NOTE (a warning shown above the numbers,
// e.g. "Validation run, busy machine"), BENCH_PORT (8791, or a free one), BENCH_WRANGLER_LOG_LEVEL
// (warn), BENCH_LOG_LEVEL (warn), BENCH_WATCHDOG_MIN (20), BENCH_OUT (bench/ by default).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { claimsConfig, measureClaims } from "./lib/claims-run.mjs";
import { commandLine, mergeResults, readResults, writeResults } from "./lib/results-file.mjs";

const root = new URL("..", import.meta.url).pathname;
const outDir = process.env.BENCH_OUT ?? new URL(".", import.meta.url).pathname;
const host = "127.0.0.1";
const t0 = Date.now();
const log = (msg) => console.log(`[bench:claims ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}`);

let config;
try {
  config = claimsConfig();
} catch (e) {
  console.error(e.message);
  process.exit(2);
}

let running = { system: null, sampler: null };
async function shutdown(code) {
  running.sampler?.stop();
  const s = running.system;
  running = { system: null, sampler: null };
  if (s) {
    log("stopping switchboard");
    await s.stop().catch((e) => console.error(`stopping switchboard: ${e.message}`));
  }
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(130));
process.on("SIGTERM", () => void shutdown(143));
process.on("SIGHUP", () => void shutdown(129));
const WATCHDOG_MS = Number(process.env.BENCH_WATCHDOG_MIN ?? 20) * 60_000;
setTimeout(() => {
  console.error(`bench:claims: still running after ${WATCHDOG_MS / 60_000} min, giving up`);
  void shutdown(1);
}, WATCHDOG_MS).unref();

try {
  const work = mkdtempSync(join(tmpdir(), "switchboard-bench-claims-"));
  log(`temp dir ${work} (wrangler's log stays there)`);
  const command = commandLine("bench:claims");
  const claims = await measureClaims({
    root,
    work,
    host,
    port: Number(process.env.BENCH_PORT ?? 8791),
    logLevel: process.env.BENCH_WRANGLER_LOG_LEVEL ?? "warn",
    log,
    config,
    command,
    note: process.env.BENCH_NOTE || null,
    register: (x) => (running = x),
  });
  writeResults(outDir, mergeResults(readResults(outDir), { claims }));
  log(`wrote the Claims section of ${join(outDir, "RESULTS.md")} and claims in results.json`);
  await shutdown(claims.error ? 1 : 0);
} catch (e) {
  console.error(`bench:claims failed: ${e?.stack ?? e}`);
  await shutdown(1);
}
