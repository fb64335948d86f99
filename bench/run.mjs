#!/usr/bin/env node
// `npm run bench`: starts the Worker under `wrangler dev` (fresh local state), then measures
//   A. callbacks accepted per second (32 concurrent senders, 10 s);
//   B. callback-to-SSE delivery latency at 200 callbacks/s for 15 s with 100, then 1,000
//      subscribers on one topic (a fresh topic each), and events lost;
// and the peak RSS of workerd, and writes bench/RESULTS.md and bench/results.json.
//
// Linux only (/proc). 1,000 streams need ~1,100 file descriptors in this process and as many
// in workerd: if `ulimit -n` is lower, raise it first (`ulimit -n 4096`). Every request goes
// to 127.0.0.1. Overrides, for quick runs: BENCH_PORT (8791), BENCH_SUBSCRIBERS ("100,1000"),
// BENCH_RATE (200), BENCH_LATENCY_S (15), BENCH_THROUGHPUT_S (10), BENCH_CONCURRENCY (32),
// BENCH_WRANGLER_LOG_LEVEL (wrangler's default when unset).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expectJson } from "./lib/http.mjs";
import { machine } from "./lib/machine.mjs";
import { startRssSampler } from "./lib/procs.mjs";
import { renderResults } from "./lib/report.mjs";
import { latency, throughput } from "./lib/scenarios.mjs";
import { applyMigrations, freePort, startWorker, wranglerVersion } from "./lib/wrangler.mjs";

const root = new URL("..", import.meta.url).pathname;
const benchDir = new URL(".", import.meta.url).pathname;
const host = "127.0.0.1";
const env = (name, fallback) => process.env[name] ?? fallback;
const config = {
  port: Number(env("BENCH_PORT", 8791)),
  subscribers: env("BENCH_SUBSCRIBERS", "100,1000").split(",").map(Number).filter((n) => n > 0),
  rate: Number(env("BENCH_RATE", 200)),
  latencyS: Number(env("BENCH_LATENCY_S", 15)),
  throughputS: Number(env("BENCH_THROUGHPUT_S", 10)),
  concurrency: Number(env("BENCH_CONCURRENCY", 32)),
  logLevel: process.env.BENCH_WRANGLER_LOG_LEVEL,
};
const ADMIN_TOKEN = "bench-admin";
const WATCHDOG_MS = 6 * 60_000;

const t0 = Date.now();
const log = (msg) => console.log(`[bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);

const work = mkdtempSync(join(tmpdir(), "switchboard-bench-"));
const persistDir = join(work, "state");
const logFile = join(work, "wrangler.log");
let worker = null;
let sampler = null;

async function shutdown(code) {
  sampler?.stop();
  if (worker) {
    log("stopping wrangler dev (its whole process group)");
    await worker.stop();
  }
  // The local state is only this run's; wrangler's output stays for a look afterwards.
  rmSync(persistDir, { recursive: true, force: true });
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

async function main() {
  log(`temp dir ${work} (wrangler output: ${logFile})`);
  const version = wranglerVersion(root);
  log("applying D1 migrations");
  applyMigrations({ root, persistDir, logFile });

  const port = await freePort(host, config.port);
  const inspectorPort = await freePort(host, 0);
  log(`starting wrangler dev ${version} on ${host}:${port}`);
  worker = await startWorker({ root, host, port, inspectorPort, persistDir, logFile, logLevel: config.logLevel, vars: { ADMIN_TOKEN, SECRETS_KEY: randomBytes(32).toString("base64") } });
  const base = worker.base;
  sampler = startRssSampler(worker.pid, `${host}:${port}`, 500);
  log(`healthy (wrangler pid/pgid ${worker.pid})`);

  const run = `b${Date.now().toString(36)}`;
  const team = await expectJson(base, "POST", "/v1/admin/teams", 201, { token: ADMIN_TOKEN, body: JSON.stringify({ name: `bench ${run}` }) });
  const key = team.api_key;
  const sid = `bench-${run}`;
  await expectJson(base, "POST", "/v1/sessions", 201, { token: key, body: JSON.stringify({ id: sid, title: "benchmark" }) });
  const topic = async (tid) => (await expectJson(base, "POST", `/v1/sessions/${sid}/topics`, 201, { token: key, body: JSON.stringify({ id: tid }) })).id;
  log(`team ${team.team_id}, session ${sid}`);

  log(`A. throughput: ${config.concurrency} concurrent senders for ${config.throughputS} s`);
  const tidA = await topic("throughput");
  const a = await throughput({ base, key, sid, tid: tidA, prefix: `${run}-a-`, concurrency: config.concurrency, durationMs: config.throughputS * 1000, log, phase: sampler.phase });

  const b = [];
  for (const [k, n] of config.subscribers.entries()) {
    log(`B. latency: ${n} subscribers, ${config.rate} callbacks/s for ${config.latencyS} s`);
    const tid = await topic(`latency-${n}`);
    b.push(await latency({ base, key, sid, tid, prefix: `${run}-b${n}-`, subscribers: n, threads: n > 200 ? 2 : 1, ratePerS: config.rate, durationMs: config.latencyS * 1000, drainTimeoutMs: k < config.subscribers.length - 1 ? 60_000 : 0, log, phase: sampler.phase }));
  }

  const memory = sampler.stop();
  sampler = null;
  log(`peak workerd RSS ${Math.round(memory.peak_kb / 1024)} MiB`);
  await worker.stop();
  worker = null;

  const results = {
    date: new Date().toISOString(),
    command: "npm run bench",
    machine: machine({ wranglerVersion: version }),
    setup: { base, wrangler_log_level: config.logLevel ?? "default", config },
    targets: { callbacks_accepted_per_s: 500, p99_delivery_ms_at_200_per_s_100_subscribers: 250, subscribers_on_one_topic_each_receiving_every_event: 1000 },
    scenarios: { throughput: a, latency: b },
    memory,
  };
  writeFileSync(join(benchDir, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(benchDir, "RESULTS.md"), renderResults(results));
  log("wrote bench/RESULTS.md and bench/results.json");
}

try {
  await main();
  await shutdown(0);
} catch (e) {
  console.error(`bench failed: ${e?.stack ?? e}`);
  console.error(`wrangler output: ${logFile}`);
  await shutdown(1);
}
