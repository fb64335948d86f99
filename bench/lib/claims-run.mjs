// The claims part of the bench (bench/claims.mjs alone, or within bench/run.mjs): Switchboard
// started fresh under `wrangler dev`, then each scenario of bench/lib/claims.mjs through
// wrangler's proxy and straight to the runtime's own port, each on a team of its own (the
// claim's statements look at the team's tasks, so one run's history never slows the next).
import { loadavg } from "node:os";
import { claimLatency, claimsTeam, claimThroughput } from "./claims.mjs";
import { machine } from "./machine.mjs";
import { startSystemSampler } from "./sampler.mjs";
import { startSwitchboard } from "./systems.mjs";
import { wranglerVersion } from "./wrangler.mjs";

const SCENARIOS = ["throughput", "latency"];

/** The claims part's settings from BENCH_CLAIMS_* (listed in bench/README.md). */
export function claimsConfig(env = process.env) {
  const get = (name, fallback) => env[name] ?? fallback;
  const config = {
    scenarios: get("BENCH_CLAIMS_SCENARIOS", SCENARIOS.join(",")).split(",").map((s) => s.trim()).filter(Boolean),
    tasks: Number(get("BENCH_CLAIMS_TASKS", 5000)),
    workers: Number(get("BENCH_CLAIMS_WORKERS", 16)),
    createConcurrency: Number(get("BENCH_CLAIMS_CREATE_CONCURRENCY", 16)),
    rate: Number(get("BENCH_CLAIMS_RATE", 50)),
    latencyS: Number(get("BENCH_CLAIMS_LATENCY_S", 20)),
    pollMs: Number(get("BENCH_CLAIMS_POLL_MS", 10)),
    direct: get("BENCH_CLAIMS_DIRECT", "1") !== "0",
  };
  const bad = config.scenarios.filter((s) => !SCENARIOS.includes(s));
  if (bad.length || !config.scenarios.length) throw new Error(`BENCH_CLAIMS_SCENARIOS: ${bad.length ? `unknown ${bad.join(", ")}` : "empty"} (known: ${SCENARIOS.join(", ")})`);
  for (const k of ["tasks", "workers", "createConcurrency", "rate", "latencyS"]) if (!(config[k] > 0)) throw new Error(`claims: ${k} must be a positive number, not ${config[k]}`);
  if (!(config.pollMs >= 0)) throw new Error(`claims: pollMs must be 0 or more, not ${config.pollMs}`);
  return config;
}

/**
 * Runs the claims part; resolves its results (with `error` set if it failed part way: what
 * was measured until then is kept). `register({ system, sampler })` hands the running
 * system to the caller's shutdown (Ctrl-C, watchdog), and is called with nulls once stopped.
 */
export async function measureClaims({ root, work, host, port, logLevel, log, config, command, note = null, register = () => {} }) {
  const out = {
    date: new Date().toISOString(),
    command,
    note,
    machine: machine({ wranglerVersion: wranglerVersion(root) }),
    // Whether anything else was running: the numbers are only worth keeping on a quiet machine.
    load_average_1m: { start: Math.round(loadavg()[0] * 100) / 100, end: null },
    config,
    base: null,
    direct_base: null,
    throughput: {},
    latency: {},
    memory: null,
    error: null,
  };
  let system = null;
  let sampler = null;
  try {
    system = await startSwitchboard({ root, work, host, port, logLevel, log });
    sampler = startSystemSampler(system.processes, 500);
    register({ system, sampler });
    out.base = system.base;
    out.log = system.describe.log;
    const direct = config.direct ? await system.directBase() : null;
    out.direct_base = direct;
    if (config.direct && !direct) log("claims: the runtime's own port was not found; only the proxy runs");
    const targets = [["proxy", system.base], ...(direct ? [["direct", direct]] : [])];
    const run = `c${Date.now().toString(36)}`;
    for (const scenario of config.scenarios) {
      for (const [via, base] of targets) {
        const tag = `${run}-${scenario[0]}${via[0]}`;
        const { key } = await claimsTeam(base, system.adminToken, `claims bench ${tag}`);
        const role = "bench";
        const phase = (p) => sampler.phase(`${via}: ${p}`);
        const where = via === "proxy" ? `through wrangler dev's proxy (${base})` : `straight to the runtime (${base})`;
        if (scenario === "throughput") {
          log(`claims T. throughput ${where}: ${config.tasks} tasks, ${config.workers} workers claim → complete until 204`);
          out.throughput[via] = await claimThroughput({ base, key, role, tag, tasks: config.tasks, workers: config.workers, createConcurrency: config.createConcurrency, log, phase });
        } else {
          log(`claims L. created → claimed ${where}: ${config.rate} creates/s for ${config.latencyS} s, ${config.workers} workers polling (${config.pollMs} ms sleep after a 204)`);
          out.latency[via] = await claimLatency({ base, key, role, tag, workers: config.workers, ratePerS: config.rate, durationMs: config.latencyS * 1000, pollMs: config.pollMs, log, phase });
        }
      }
    }
  } catch (e) {
    out.error = String(e?.stack ?? e);
    console.error(`bench: claims failed: ${out.error}`);
  } finally {
    out.load_average_1m.end = Math.round(loadavg()[0] * 100) / 100;
    out.memory = sampler?.stop() ?? null;
    if (system) {
      log("stopping switchboard (claims)");
      await system.stop().catch((e) => console.error(`stopping switchboard: ${e.message}`));
    }
    register({ system: null, sampler: null });
  }
  return out;
}
