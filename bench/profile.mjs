#!/usr/bin/env node
// Where the runtime's CPU goes when agents POST callbacks: `wrangler dev` started as bench/run.mjs
// does; V8's CPU profiler (DevTools protocol) on the Worker via wrangler's --inspector-port (one
// isolate: routes, queue consumer, Durable Objects) and on miniflare's D1, queue, entry and trace-
// collector workers via the runtime workerd's own inspector port (in /proc); scenario A (32 senders,
// 10 s, then the drain); top functions by self time, module rollup, CPU per process and thread.
// PROFILE_SCENARIO=claims profiles the task queue instead: BENCH_CLAIMS_TASKS (3000) tasks created
// unprofiled, then BENCH_CLAIMS_WORKERS (16) workers claim → complete until 204 while profiling
// (bench/lib/claims.mjs `claimThroughput`); the Worker's time is also split by call stack into
// request handling, the DO RPC's caller side and TeamHub.publish (the DO), per claim → complete.
// Profiles: bench/out/profile-<target>.cpuprofile. Run: `ulimit -n 8192; npx node bench/profile.mjs`.
// Env: PROFILE_SCENARIO (callbacks | claims), BENCH_THROUGHPUT_S (10), BENCH_CONCURRENCY (32), PROFILE_INTERVAL_US (200, the Worker),
// PROFILE_INTERNALS_INTERVAL_US (1000: each profiler interrupts workerd's one thread),
// PROFILE_INTERNALS (regex of workerd target ids; "" for the Worker only).
import { execSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { expectJson } from "./lib/http.mjs";
import { groupProcesses, labeler } from "./lib/procs.mjs";
import { startSystemSampler } from "./lib/sampler.mjs";
import { claimsTeam, claimThroughput } from "./lib/claims.mjs";
import { throughput } from "./lib/scenarios.mjs";
import { applyMigrations, freePort, startWorker } from "./lib/wrangler.mjs";

const root = new URL("..", import.meta.url).pathname;
const host = "127.0.0.1";
const env = (name, fallback) => process.env[name] ?? fallback;
const [durationS, concurrency] = [Number(env("BENCH_THROUGHPUT_S", 10)), Number(env("BENCH_CONCURRENCY", 32))];
const [workerUs, internalsUs] = [Number(env("PROFILE_INTERVAL_US", 200)), Number(env("PROFILE_INTERNALS_INTERVAL_US", 1000))];
const scenario = env("PROFILE_SCENARIO", "callbacks");
if (!["callbacks", "claims"].includes(scenario)) throw new Error(`PROFILE_SCENARIO: callbacks or claims, not ${scenario}`);
const [claimTasks, claimWorkers] = [Number(env("BENCH_CLAIMS_TASKS", 3000)), Number(env("BENCH_CLAIMS_WORKERS", 16))];
const internals = env("PROFILE_INTERNALS", "^(core:entry|d1:db|queues:queue|core:user:miniflare-observability-collector)($|:(entry|switchboard-callbacks)$)");
const ADMIN_TOKEN = "bench-admin";
const CLK_TCK = Number(execSync("getconf CLK_TCK", { encoding: "utf8" })) || 100;
const t0 = Date.now();
const log = (msg) => console.log(`[profile ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);
const work = mkdtempSync(join(tmpdir(), "switchboard-profile-"));
const [persistDir, logFile] = [join(work, "state"), join(work, "wrangler.log")];
let [worker, sampler] = [null, null];

async function shutdown(code) {
  sampler?.stop();
  if (worker) log("stopping wrangler dev (its whole process group)"), await worker.stop();
  rmSync(persistDir, { recursive: true, force: true });
  process.exit(code);
}
for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]]) process.on(sig, () => void shutdown(code));
setTimeout(() => (console.error("profile: still running after 5 min, giving up"), void shutdown(1)), 5 * 60_000).unref();

/** A DevTools protocol session. workerd answers a command whose result is empty by echoing it
 * without `result`, so answers are matched by id alone. wrangler's proxy wants an Origin. */
async function cdp(url) {
  const ws = new WebSocket(url, { headers: { Origin: `http://${host}` } });
  const pending = new Map();
  let nextId = 0;
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    const p = msg.id !== undefined && !msg.method?.startsWith("Runtime.") && pending.get(msg.id);
    if (p) pending.delete(msg.id), msg.error ? p.reject(new Error(`${p.method}: ${msg.error.message}`)) : p.resolve(msg.result ?? {});
  };
  ws.onclose = () => pending.forEach((p) => p.reject(new Error(`${url}: inspector connection closed`)));
  await new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = () => reject(new Error(`${url}: cannot connect`)))));
  const send = (method, params = {}) => new Promise((resolve, reject) => (pending.set(++nextId, { method, resolve, reject }), ws.send(JSON.stringify({ id: nextId, method, params }))));
  return { send, close: () => ws.close() };
}

/** The runtime workerd (started with --inspector-addr) and the port of its own inspector. */
async function runtimeInspector(pgid) {
  const rt = groupProcesses(pgid).find((p) => p.comm === "workerd" && readFileSync(`/proc/${p.pid}/cmdline`, "utf8").includes("--inspector-addr"));
  if (!rt) return null;
  const inode = (fd) => { try { return /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/${rt.pid}/fd/${fd}`))?.[1]; } catch {} };
  const inodes = new Set(readdirSync(`/proc/${rt.pid}/fd`).map(inode));
  const ports = ["tcp", "tcp6"].flatMap((f) => readFileSync(`/proc/net/${f}`, "utf8").split("\n").slice(1).map((l) => l.trim().split(/\s+/)))
    .filter((f) => f[3] === "0A" && inodes.has(f[9])).map((f) => parseInt(f[1].split(":").pop(), 16));
  for (const port of ports) {
    try {
      const list = await (await fetch(`http://${host}:${port}/json`, { signal: AbortSignal.timeout(2000) })).json();
      if (Array.isArray(list) && list.some((t) => t.id?.startsWith("core:user:"))) return { pid: rt.pid, port, list };
    } catch {}
  }
  return { pid: rt.pid, list: [] };
}
/** CPU ticks per thread of a process; null once it is gone (wrangler dev restarts workerd when sources change). */
const threadTicks = (pid) => { try { return new Map(readdirSync(`/proc/${pid}/task`).flatMap((t) => {
  const st = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
  const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
  return [[`${t} ${st.slice(st.indexOf("(") + 1, st.lastIndexOf(")"))}`, Number(f[11]) + Number(f[12])]];
})); } catch { return null; } };

/** The Worker's bundle ("index.js") is in .wrangler/tmp/dev-<id>/ only while wrangler dev runs
 * (ours: the one whose lines hold the profile's function names). Module: esbuild's `// path`
 * marker above the line; file:line: wrangler's source map. miniflare's modules keep their names. */
const maps = new Map();
function loadBundleMap(profile) {
  const dir = join(root, ".wrangler", "tmp");
  const named = profile.nodes.map((n) => n.callFrame).filter((f) => f.url === "index.js" && /^\w{4,}$/.test(f.functionName)).slice(0, 300);
  let best = null;
  for (const d of readdirSync(dir).filter((d) => d.startsWith("dev-"))) {
    try {
      const lines = readFileSync(join(dir, d, "index.js"), "utf8").split("\n");
      const score = named.filter((f) => lines[f.lineNumber]?.includes(f.functionName)).length;
      if (!best || score > best.score) best = { score, lines, file: join(dir, d, "index.js") };
    } catch {}
  }
  if (!(best?.score > 0)) return;
  const marks = best.lines.flatMap((l, i) => (/^\/\/ [\w@.\-/]+\.[mc]?[jt]sx?$/.test(l) ? [[i, l.slice(3)]] : []));
  maps.set("index.js", { file: best.file, marks, sm: new SourceMap(JSON.parse(readFileSync(`${best.file}.map`, "utf8"))) });
}
function origin({ url, lineNumber: line, columnNumber: col }) {
  const m = maps.get(url);
  if (!m) return { mod: url, where: `${url}:${line + 1}` };
  let path = "(bundle prelude: esbuild helpers)";
  for (const [l, p] of m.marks) if (l <= line) path = p;
  const pkg = /^node_modules\/((@[^/]+\/)?[^/]+)/.exec(path)?.[1];
  const e = m.sm.findEntry(line, col);
  const rel = e?.originalSource ? relative(root, join(m.file, "..", e.originalSource)) : null;
  const file = !rel ? path : pkg ? `${pkg}/${rel.replace(/^.*node_modules\//, "").replace(`${pkg}/`, "")}` : rel;
  return { mod: pkg ? `node_modules/${pkg}` : path, where: `${file}:${rel ? e.originalLine + 1 : line + 1}` };
}

/** Self time per function and module. V8 samples an isolate only while it runs (all share
 * workerd's thread), so a sample counts for the sampler's effective period (median of the gaps
 * under 1.5 intervals, i.e. back-to-back samples), not for the gap before it. Frames without a
 * script are native (workerd's C++ API, V8 builtins): shown with, and rolled up to, their
 * nearest caller that has one. */
function analyze(profile, us) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map(profile.nodes.flatMap((n) => (n.children ?? []).map((c) => [c, n.id])));
  const deltas = profile.timeDeltas.filter((d) => d > 0 && d < 1.5 * us).sort((x, y) => x - y);
  const period = (deltas[deltas.length >> 1] ?? us) / 1000;
  const [count, fns, self, owned] = [new Map(), new Map(), new Map(), new Map()];
  const add = (m, k, ms) => m.set(k, (m.get(k) ?? 0) + ms);
  for (const id of profile.samples) add(count, id, 1);
  let idle = 0;
  for (const [id, n] of count) {
    const [f, ms] = [byId.get(id).callFrame, n * period];
    let o, owner;
    if (/^\((program|garbage collector|idle|root)\)$/.test(f.functionName)) o = { mod: f.functionName, where: "" };
    else if (!f.url) {
      let p = parent.get(id);
      while (p !== undefined && !byId.get(p).callFrame.url) p = parent.get(p);
      const caller = p === undefined ? null : byId.get(p).callFrame;
      const c = caller && origin(caller);
      o = { mod: "(native: workerd C++ / V8 builtins)", where: c ? `native, from ${caller.functionName || "(anonymous)"} ${c.where}` : "native" };
      owner = c ? c.mod : "(native, no script caller)";
    } else o = origin(f);
    add(fns, `${f.functionName || "(anonymous)"}\u0000${o.where}`, ms);
    add(self, o.mod, ms);
    add(owned, owner ?? o.mod, ms);
    if (f.functionName === "(idle)") idle += ms;
  }
  const total = profile.samples.length * period;
  return { fns, self, owned, total, busy: total - idle, period, samples: profile.samples.length };
}

/** Self time split by what is on the stack: each sample goes to the first of `rules` ([label,
 * test(callFrame, where)]) that any frame of its stack matches, else to `rest`; (idle), (program)
 * and (garbage collector) stay apart. */
function splitByStack(profile, us, rules, rest) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map(profile.nodes.flatMap((n) => (n.children ?? []).map((c) => [c, n.id])));
  const deltas = profile.timeDeltas.filter((d) => d > 0 && d < 1.5 * us).sort((x, y) => x - y);
  const period = (deltas[deltas.length >> 1] ?? us) / 1000;
  const labelOf = new Map();
  const classify = (id) => {
    if (labelOf.has(id)) return labelOf.get(id);
    const leaf = byId.get(id).callFrame.functionName;
    let label = /^\((program|garbage collector|idle)\)$/.test(leaf) ? leaf : null;
    if (!label) {
      const stack = [];
      for (let p = id; p !== undefined; p = parent.get(p)) if (byId.get(p).callFrame.url) stack.push(byId.get(p).callFrame);
      const wheres = stack.map((f) => [f, origin(f).where]);
      label = rules.find(([, test]) => wheres.some(([f, w]) => test(f, w)))?.[0] ?? rest;
    }
    labelOf.set(id, label);
    return label;
  };
  const out = new Map();
  for (const id of profile.samples) out.set(classify(id), (out.get(classify(id)) ?? 0) + period);
  return out;
}

const pct = (x, of) => (of > 0 ? `${((x / of) * 100).toFixed(1)}%` : "-");
function table(rows, head) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join("  ");
  console.log([line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n"));
}

async function main() {
  log(`temp dir ${work} (wrangler output: ${logFile}); source ${execSync("git describe --always --dirty", { cwd: root, encoding: "utf8" }).trim()}`);
  applyMigrations({ root, persistDir, logFile });
  const [port, inspectorPort] = [await freePort(host, 0), await freePort(host, 0)];
  // As bench/run.mjs runs it: no wrangler request log, no per-request Worker log line.
  const logLevel = env("BENCH_WRANGLER_LOG_LEVEL", "warn");
  worker = await startWorker({ root, host, port, inspectorPort, persistDir, logFile, logLevel, vars: { ADMIN_TOKEN, SECRETS_KEY: randomBytes(32).toString("base64"), LOG_LEVEL: env("BENCH_LOG_LEVEL", "warn") } });
  const [base, run] = [worker.base, `p${Date.now().toString(36)}`];
  log(`wrangler dev healthy on ${base}, inspector ${inspectorPort} (pgid ${worker.pid})`);
  let callbacks = null;
  if (scenario === "callbacks") {
    const team = await expectJson(base, "POST", "/v1/admin/teams", 201, { token: ADMIN_TOKEN, body: JSON.stringify({ name: `profile ${run}` }) });
    const [key, sid] = [team.api_key, `profile-${run}`];
    await expectJson(base, "POST", "/v1/sessions", 201, { token: key, body: JSON.stringify({ id: sid, title: "profile" }) });
    const tid = (await expectJson(base, "POST", `/v1/sessions/${sid}/topics`, 201, { token: key, body: JSON.stringify({ id: "throughput" }) })).id;
    callbacks = { key, sid, tid };
  }

  // Targets: wrangler's inspector's list, plus internal workers on workerd's own inspector (not
  // core:user:<name>: wrangler's proxy holds its one session).
  const listed = await (await fetch(`http://${host}:${inspectorPort}/json`)).json();
  log(`wrangler's inspector lists ${listed.length} target(s): ${listed.map((t) => `${t.title} (${t.webSocketDebuggerUrl})`).join(", ")}`);
  const targets = listed.map((t, i) => ({ name: listed.length === 1 ? "worker" : `worker-${i}`, url: t.webSocketDebuggerUrl, us: workerUs }));
  const rt = await runtimeInspector(worker.pid);
  if (rt?.port) log(`workerd's own inspector (port ${rt.port}) lists ${rt.list.length} isolates: ${rt.list.map((t) => t.id).join(", ")}`);
  for (const t of internals ? rt?.list ?? [] : []) if (new RegExp(internals).test(t.id)) targets.push({ name: t.id.replace(/[^\w.-]+/g, "_"), url: `ws://${host}:${rt.port}/${t.id}`, us: internalsUs });
  for (const t of targets) (t.s = await cdp(t.url)), await t.s.send("Profiler.enable"), await t.s.send("Profiler.setSamplingInterval", { interval: t.us });
  const label = labeler(`${host}:${port}`);
  sampler = startSystemSampler(() => groupProcesses(worker.pid).map((x) => ({ ...x, label: label(x), counted: x.comm === "workerd" })), 500);
  // The profilers and the thread counters run over the measured load only. The commands are
  // written to the sockets at once (send is synchronous up to the write), so they precede the
  // requests that follow; for claims they start after the tasks are created and stop before
  // the verification's reads.
  let ticks0, ticks1, wall0, wallS, stopped;
  const startProfiling = () => {
    [ticks0, wall0] = [rt && threadTicks(rt.pid), performance.now()];
    const started = Promise.all(targets.map((t) => t.s.send("Profiler.start")));
    log(`profiling ${targets.map((t) => `${t.name} (every ${t.us} µs)`).join(", ")}`);
    return started;
  };
  const stopProfiling = () => {
    [ticks1, wallS] = [rt && threadTicks(rt.pid), (performance.now() - wall0) / 1000]; // before the profilers' threads end
    stopped = Promise.all(targets.map(async (t) => ({ ...t, profile: (await t.s.send("Profiler.stop")).profile })));
  };
  let a = null, c = null;
  if (scenario === "callbacks") {
    await startProfiling();
    a = await throughput({ base, ...callbacks, prefix: `${run}-`, concurrency, durationMs: durationS * 1000, drainTimeoutMs: 60_000, log, phase: sampler.phase });
    stopProfiling();
  } else {
    const { key } = await claimsTeam(base, ADMIN_TOKEN, `profile claims ${run}`);
    const phase = (p) => {
      if (p === "T: claim → complete") void startProfiling();
      if (p === "T: verifying") stopProfiling();
      sampler.phase(p);
    };
    log(`claims: ${claimTasks} tasks, ${claimWorkers} workers claim → complete until 204`);
    c = await claimThroughput({ base, key, role: "bench", tag: run, tasks: claimTasks, workers: claimWorkers, createConcurrency: 16, log, phase });
  }
  if (!stopped) stopProfiling();
  const profiles = await stopped;
  const memory = sampler.stop();
  for (const t of targets) t.s.close();
  for (const t of profiles) if (t.name.startsWith("worker")) loadBundleMap(t.profile);
  await worker.stop(), ([worker, sampler] = [null, null]);

  mkdirSync(join(root, "bench", "out"), { recursive: true });
  if (a) console.log(`\nCallbacks: ${a.accepted} accepted in ${(a.duration_ms / 1000).toFixed(1)} s = ${a.accepted_per_s}/s (statuses ${JSON.stringify(a.statuses)}); drained: ${a.drain.drained} (${a.drain.applied} applied ${a.drain.ms_from_first_post} ms after the first post)`);
  if (c) console.log(`\nClaims: ${c.claimed} claimed in ${(c.claim_window_ms / 1000).toFixed(1)} s = ${c.claims_per_s}/s, ${c.completed} completed (${c.cycles_per_s} cycles/s); claim p50 ${c.claim_latency_ms.p50} ms p99 ${c.claim_latency_ms.p99} ms, complete p50 ${c.complete_latency_ms.p50} ms; statuses claim ${JSON.stringify(c.claim_statuses)} complete ${JSON.stringify(c.complete_statuses)}; ${c.zero_double_claims ? "every task claimed exactly once" : "**NOT** every task claimed exactly once"}; profiled ${wallS.toFixed(1)} s`);
  const [n, per] = a ? [a.accepted, "accepted callback"] : [c.completed, "claim → complete cycle"];
  const perCycle = [];
  for (const t of profiles) {
    const file = join(root, "bench", "out", `profile-${t.name}.cpuprofile`);
    writeFileSync(file, JSON.stringify(t.profile));
    const r = analyze(t.profile, t.us);
    console.log(`\n=== ${t.name}: ${relative(root, file)}: ${r.samples} samples, one per ${(r.period * 1000).toFixed(0)} µs of running => ${Math.round(r.busy)} ms not idle = ${(r.busy / Math.max(1, n)).toFixed(3)} ms per ${per}`);
    if (c && t.name.startsWith("worker")) {
      // The DO runs in the Worker's isolate: its invocations (the RPC's callee) start in durable-objects/.
      const split = splitByStack(t.profile, t.us, [
        ["TeamHub DO (publish, applyEvents and its SQL)", (_f, w) => w.startsWith("durable-objects/")],
        ["DO RPC, caller side (publishTeamEvents)", (f) => f.functionName === "publishTeamEvents"],
      ], "request handling (routes, auth, zod, drizzle, D1 binding calls)");
      console.log(`Worker time by call stack, per ${per}:`);
      table([...split].sort((x, y) => y[1] - x[1]).map(([k, ms]) => [k, ms.toFixed(1), k === "(idle)" ? "-" : (ms / n).toFixed(3)]), ["stack", "ms", "ms/cycle"]);
      for (const [k, ms] of split) if (k !== "(idle)") perCycle.push([`worker isolate: ${k}`, ms / n]);
    } else if (c) perCycle.push([`${t.name} isolate (not idle)`, r.busy / n]);
    if (r.samples < 20) continue;
    console.log(`Top 40 functions by self time (% of ${Math.round(r.total)} ms sampled):`);
    table([...r.fns].sort((x, y) => y[1] - x[1]).slice(0, 40).map(([k, ms]) => [...k.split("\u0000"), ms.toFixed(1), pct(ms, r.total)]), ["function", "where", "self ms", "%"]);
    console.log("By module (% excluding idle; the last two columns count native frames for their script caller's module):");
    const mods = [...new Set([...r.self.keys(), ...r.owned.keys()])].sort((x, y) => (r.owned.get(y) ?? 0) - (r.owned.get(x) ?? 0));
    const cols = (m, map) => [(map.get(m) ?? 0).toFixed(1), m === "(idle)" ? "-" : pct(map.get(m) ?? 0, r.busy)];
    table(mods.map((m) => [m, ...cols(m, r.self), ...cols(m, r.owned)]), ["module", "self ms", "% busy", "+native ms", "% busy"]);
  }
  console.log("\nCPU per process of wrangler dev's group (% of one core, user+system from /proc):");
  const phases = memory.phases.filter((p) => p.wall_s >= 0.5);
  const labels = [...new Set(phases.flatMap((p) => Object.keys(p.cpu_percent_of_one_core)))];
  table(labels.map((l) => [l, ...phases.map((p) => `${p.cpu_percent_of_one_core[l] ?? "-"}%`)]), ["process", ...phases.map((p) => `${p.phase} (${p.wall_s} s)`)]);
  if (!ticks0 || !ticks1) return void (rt && console.log(`\nThe runtime workerd (pid ${rt.pid}) was gone by the end: wrangler dev restarted it (a source changed?).`));
  console.log(`\nThreads of the runtime workerd (pid ${rt.pid}) over the ${wallS.toFixed(1)} s of load and drain (% of one core):`);
  const busy = [...ticks1].map(([t, n]) => [t, ((n - (ticks0.get(t) ?? 0)) / CLK_TCK / wallS) * 100]).filter(([, x]) => x >= 0.5);
  table(busy.map(([t, x]) => [t, `${x.toFixed(1)}%`, ((x / 100) * wallS * 1000 / n).toFixed(3)]), ["thread (tid name)", "cpu", `ms per ${per}`]);
  if (perCycle.length) {
    const total = busy.reduce((x, [, y]) => x + y, 0) / 100 * wallS * 1000 / n;
    console.log(`\nRuntime CPU per ${per}: ${total.toFixed(3)} ms on workerd's threads in all; sampled by V8 in its isolates:`);
    table(perCycle.map(([k, ms]) => [k, ms.toFixed(3)]), ["where", "ms"]);
  }
}

await main().then(() => shutdown(0), (e) => (console.error(`profile failed: ${e?.stack ?? e}\nwrangler output: ${logFile}`), shutdown(1)));
