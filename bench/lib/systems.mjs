// The three systems the bench measures side by side, behind one shape:
//   { name, title, base, streamBase, adminToken, processes(), restart(), stop(), describe }
// base serves the API and callbacks; streamBase the SSE streams (the same server except for
// the peer, whose SSE server is its own process: the seed's load balancer routed by path,
// here the client goes to each directly, so the peer has no proxy hop). processes() lists
// what to sample: [{pid, label, cpuTicks, counted}] (counted: part of the system's memory).
// restart({ mode, teamId, sid, tid, probe }) restarts the system the way its production
// restarts, and resolves with { how, began_epoch_ms, ready_ms, ... } once it serves again.
// restartModes (Switchboard only): the modes restart() knows, the first the main one.
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { groupProcesses, labeler, listeningPorts, processTree } from "./procs.mjs";
import { runtimeV8Flags } from "../../scripts/runtime-flags.mjs";
import { missingServices, spawnGroup, startPostgres, startRedis } from "./services.mjs";
import { expectJson, request } from "./http.mjs";
import { nowMs } from "./sse-client.mjs";
import { applyMigrations, freePort, restartableConfig, startWorker, wranglerVersion } from "./wrangler.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitHealthy(base, timeoutMs = 60_000, isDead = () => null) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const dead = isDead();
    if (dead) throw new Error(dead);
    try {
      const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {}
    await sleep(50);
  }
  throw new Error(`${base}/healthz did not answer 200 within ${timeoutMs / 1000} s`);
}

/**
 * Switchboard under `wrangler dev`, started with a copy of wrangler.toml (restartableConfig).
 * Two restart modes:
 *   redeploy (the main one): POST /v1/admin/teams/{team}/hubs/restart aborts the run's
 *     session and topic Durable Objects (ctx.abort()) as a deploy resets them: their streams
 *     drop, their memory is discarded, the next request loads them from their SQLite; a
 *     queue message being applied at that moment fails and the queue retries it. wrangler
 *     dev, its queue simulator (and the messages in it) and the Worker isolate keep running.
 *   reload: touches the config copy, so wrangler dev rebuilds and Miniflare replaces its
 *     runtime workerd process (Worker, Durable Objects, local D1 and the queue simulator,
 *     whose messages live only in that process's memory) with a new one on the same
 *     persisted state, while wrangler's proxy keeps the public port and holds requests until
 *     the new runtime is up.
 */
export async function startSwitchboard({ root, work, host, port, logLevel, log }) {
  const dir = join(work, "switchboard");
  mkdirSync(dir, { recursive: true });
  const persistDir = join(dir, "state");
  const logFile = join(dir, "wrangler.log");
  const config = restartableConfig(root, dir);
  const version = wranglerVersion(root);
  log(`applying D1 migrations (wrangler output: ${logFile})`);
  applyMigrations({ root, persistDir, logFile, config });
  const p = await freePort(host, port);
  const inspectorPort = await freePort(host, 0);
  const adminToken = `bench-${randomBytes(8).toString("hex")}`;
  log(`starting wrangler dev ${version} on ${host}:${p}`);
  const worker = await startWorker({ root, host, port: p, inspectorPort, persistDir, logFile, logLevel, config, vars: { ADMIN_TOKEN: adminToken, SECRETS_KEY: randomBytes(32).toString("base64"), LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "warn" } });
  const label = labeler(`${host}:${p}`);
  const processes = () => groupProcesses(worker.pid).map((x) => ({ ...x, label: label(x), counted: x.comm === "workerd" }));
  const runtimePid = () => processes().find((x) => x.label.startsWith("workerd: runtime"))?.pid ?? null;

  /** The redeploy mode: the run's hubs restarted through the admin endpoint, the runtime left running. */
  async function redeploy({ teamId, sid, tid, probe }) {
    if (!teamId || !sid) throw new Error("a redeploy restart needs the team and session whose hubs to restart");
    const before = runtimePid();
    const began = nowMs();
    const res = await request(worker.base, "POST", `/v1/admin/teams/${encodeURIComponent(teamId)}/hubs/restart`, { token: adminToken, body: JSON.stringify(tid ? { session_id: sid, topic_id: tid } : { session_id: sid }), timeoutMs: 30_000 });
    if (res.status !== 200) throw new Error(`POST /v1/admin/teams/{team}/hubs/restart: expected 200, got ${res.status}: ${res.text.slice(0, 300)}`);
    const answeredAt = nowMs();
    const { restarted } = res.json();
    // Serving again: a read of the topic answered by its hub, loaded anew from its SQLite.
    let probeError = null;
    while (probe) {
      try {
        await probe();
        break;
      } catch (e) {
        probeError = e.message;
        if (nowMs() - began > 60_000) throw new Error(`the topic's hub did not answer within 60 s of its restart: ${probeError}`);
        await sleep(20);
      }
    }
    const readyAt = nowMs();
    const after = runtimePid();
    return {
      mode: "redeploy",
      how: `redeploy: POST /v1/admin/teams/{team}/hubs/restart aborted the run's ${restarted.map((h) => h.split(" ")[0]).join(" and ")} Durable Objects (ctx.abort(), as a deploy resets them); wrangler dev, its queue simulator and the Worker isolate kept running (runtime workerd ${after === before ? "unchanged" : `**replaced**: ${before} → ${after}`})`,
      restarted,
      began_epoch_ms: began,
      admin_answered_ms: Math.round(answeredAt - began),
      ready_ms: Math.round(readyAt - began),
      runtime_pid_before: before,
      runtime_pid_after: after,
      runtime_kept: before !== null && before === after,
    };
  }

  return {
    name: "switchboard",
    title: "Switchboard",
    base: worker.base,
    streamBase: worker.base,
    adminToken,
    processes,
    restartModes: ["redeploy", "reload"],
    /**
     * The runtime workerd's own HTTP address, behind wrangler's proxy: the Worker without the
     * dev-only hop production does not have. Found by asking each port it listens on for
     * /healthz (its other sockets are miniflare's loopback and inspector, which answer otherwise).
     */
    /**
     * After a B phase: how many streams the topic's hub still holds once every client closed
     * its own (through wrangler's proxy the hub is never told, cloudflare/workers-sdk#9438;
     * straight to the runtime, only at its next write), then a restart of the hub, so those
     * streams do not load the phases after it. Production has no such proxy.
     */
    async releaseStreams({ teamId, sid, tid }) {
      const q = new URLSearchParams({ session_id: sid, topic_id: tid });
      const status = await expectJson(worker.base, "GET", `/v1/admin/teams/${encodeURIComponent(teamId)}/hubs?${q}`, 200, { token: adminToken });
      const res = await request(worker.base, "POST", `/v1/admin/teams/${encodeURIComponent(teamId)}/hubs/restart`, { token: adminToken, body: JSON.stringify({ session_id: sid, topic_id: tid }), timeoutMs: 30_000 });
      if (res.status !== 200) throw new Error(`hubs/restart after a B phase: ${res.status} ${res.text.slice(0, 300)}`);
      return status.hubs[1].streams;
    },
    async directBase() {
      const pid = runtimePid();
      for (const port of pid ? listeningPorts(pid) : []) {
        const base = `http://${host}:${port}`;
        const res = await request(base, "GET", "/healthz", { timeoutMs: 2000 }).catch(() => null);
        if (res?.status === 200 && res.text.includes("ok")) return base;
      }
      return null;
    },
    /** Queue messages the consumer failed to apply and retried so far: its warn lines in wrangler's log. */
    queueRetriesLogged() {
      try {
        return readFileSync(logFile, "utf8").split("callback message failed; retrying").length - 1;
      } catch {
        return null;
      }
    },
    describe: {
      what: `The Worker under \`wrangler dev\` ${version} with local D1, Queues and Durable Objects persisted to a temp dir, migrations applied first, started with a copy of wrangler.toml whose paths are absolute (so the restart test's reload mode can make wrangler dev reload it without touching the project's files); the runtime's V8 flags: \`${runtimeV8Flags() || "none"}\` (scripts/runtime-flags.mjs).`,
      processes: "2 workerd processes (the runtime: Worker, DOs, local D1 and queue simulator, one JavaScript thread; wrangler's proxy on the public port) and wrangler's Node process (dev tooling, not counted in memory)",
      log: logFile,
      wrangler: version,
    },
    async restart({ mode = "redeploy", ...target } = {}) {
      if (mode === "redeploy") return redeploy(target);
      if (mode !== "reload") throw new Error(`unknown restart mode ${mode} (known: redeploy, reload)`);
      const before = runtimePid();
      const began = nowMs();
      const t = new Date();
      utimesSync(config, t, t);
      let replacedAt = null;
      while (nowMs() - began < 60_000) {
        const now = runtimePid();
        if (now !== before) {
          replacedAt = nowMs();
          break;
        }
        await sleep(10);
      }
      if (replacedAt === null) throw new Error("wrangler dev did not replace its runtime within 60 s of the config being touched");
      await waitHealthy(worker.base, 60_000);
      // The proxy holds /healthz until the new runtime answers: that is when it serves again.
      return {
        mode,
        how: "reload: touched the wrangler.toml copy; wrangler dev rebuilt, SIGKILLed its runtime workerd (Worker, DOs, local D1, queue simulator and its messages) and started a new one on the same persisted D1/DO state; the proxy kept the port",
        began_epoch_ms: began,
        old_runtime_gone_ms: Math.round(replacedAt - began),
        ready_ms: Math.round(nowMs() - began),
        old_pid: before,
        new_pid: runtimePid(),
      };
    },
    async stop() {
      await worker.stop();
      rmSync(persistDir, { recursive: true, force: true });
    },
  };
}

const killHow = (signal) => (signal === "SIGKILL" ? "SIGKILL (killed at once, as a crash or an impatient orchestrator does) to" : `${signal} (a graceful stop: streams ended, requests in flight finished, at most 5 s) to`);

/** A Node process of a peer, in its own process group, restartable. */
function nodeProcess({ script, env, logFile, label }) {
  let proc = null;
  let base = null;
  return {
    label,
    get pid() {
      return proc?.pid ?? null;
    },
    get base() {
      return base;
    },
    async start(port) {
      proc = spawnGroup(process.execPath, [script], { logFile, env: { ...process.env, ...env, PORT: String(port) } });
      base = `http://127.0.0.1:${port}`;
      await waitHealthy(base, 60_000, () => (proc.exited() ? `${label} exited (${JSON.stringify(proc.exited())}); see ${logFile}` : null));
    },
    /** SIGTERM: a graceful stop (streams ended, requests in flight finished), SIGKILL after 10 s. SIGKILL: killed at once. */
    async stop(signal = "SIGTERM") {
      await proc?.stop(signal, 10_000);
    },
    processes() {
      return proc ? groupProcesses(proc.pid).map((x) => ({ ...x, label, counted: true })) : [];
    },
  };
}

const peersDir = new URL("../peers/", import.meta.url).pathname;

/**
 * The seed system's architecture: receiver (Node) → PostgreSQL + Redis pub/sub → SSE server
 * (Node), PostgreSQL and Redis started by the bench. restart() kills both Node processes
 * (restartSignal: SIGKILL by default, the harder case, where an event can be committed and
 * not yet published; SIGTERM stops them gracefully) and starts new ones; PostgreSQL and
 * Redis keep running.
 */
export async function startPeer({ work, host, log, restartSignal = "SIGKILL" }) {
  const missing = missingServices();
  if (missing) throw new Error(missing);
  const dir = join(work, "peer");
  mkdirSync(dir, { recursive: true });
  // PostgreSQL runs as another user, which must be able to reach its data dir.
  chmodSync(work, 0o711);
  chmodSync(dir, 0o711);
  const adminToken = `bench-${randomBytes(8).toString("hex")}`;
  const started = [];
  const stopAll = async () => {
    for (const s of started.reverse()) await s.stop().catch(() => {});
    started.length = 0;
    // The data is only this run's; the logs stay for a look afterwards.
    rmSync(join(dir, "pg", "pgdata"), { recursive: true, force: true });
    rmSync(join(dir, "redis"), { recursive: true, force: true });
  };
  try {
    const pgPort = await freePort(host, 0);
    log(`starting PostgreSQL on ${host}:${pgPort} (log ${join(dir, "postgres.log")})`);
    const pg = await startPostgres({ dir: join(dir, "pg"), port: pgPort, logFile: join(dir, "postgres.log"), schemaFile: join(peersDir, "schema.sql") });
    started.push(pg);
    const redisPort = await freePort(host, 0);
    log(`starting Redis on ${host}:${redisPort}`);
    const redis = await startRedis({ dir: join(dir, "redis"), port: redisPort, logFile: join(dir, "redis.log") });
    started.push(redis);
    const env = { ADMIN_TOKEN: adminToken, DATABASE_URL: pg.url, REDIS_URL: redis.url };
    const receiver = nodeProcess({ script: join(peersDir, "receiver.mjs"), env, logFile: join(dir, "receiver.log"), label: "node: peer receiver" });
    const sse = nodeProcess({ script: join(peersDir, "sse-server.mjs"), env, logFile: join(dir, "sse-server.log"), label: "node: peer SSE server" });
    const ports = { receiver: await freePort(host, 0), sse: await freePort(host, 0) };
    await Promise.all([receiver.start(ports.receiver), sse.start(ports.sse)]);
    started.push(receiver, sse);
    log(`peer receiver ${receiver.base}, SSE server ${sse.base}`);
    return {
      name: "peer",
      title: "Peer (seed architecture)",
      base: receiver.base,
      streamBase: sse.base,
      adminToken,
      processes: () => [
        ...receiver.processes(),
        ...sse.processes(),
        ...processTree(pg.pgid).map((x) => ({ ...x, label: "postgres", counted: true })),
        ...groupProcesses(redis.pgid).map((x) => ({ ...x, label: "redis-server", counted: true })),
      ],
      describe: {
        what: "A Node receiver (node:http, pg, ioredis) that commits each event to PostgreSQL (one transaction per event, per-topic sequence, exactly once per event id) and publishes it on Redis, and a Node SSE server subscribed to Redis that replays from PostgreSQL by Last-Event-ID, puts events back in sequence order and fills a gap from PostgreSQL. PostgreSQL (default settings: fsync and synchronous_commit on) and Redis (pub/sub only) from Debian's packages, on 127.0.0.1 with data in a temp dir. Fan-out (bench/peers/fanout.mjs, shared with the limit): one write per stream per batch of events, at most 20,000 writes/s over all streams (Switchboard's hubs: 1,000, durable-objects/hub.ts: each of their writes crosses the DO, the Worker and wrangler's proxy).",
        processes: "2 Node processes (receiver; SSE server), PostgreSQL (postmaster, its background processes and one backend per pooled connection: 16 for the receiver, 8 for the SSE server), redis-server",
        logs: dir,
      },
      async restart() {
        const began = nowMs();
        await Promise.all([receiver.stop(restartSignal), sse.stop(restartSignal)]);
        const stoppedAt = nowMs();
        await Promise.all([receiver.start(ports.receiver), sse.start(ports.sse)]);
        return { how: `${killHow(restartSignal)} the receiver and the SSE server, then new processes on the same ports; PostgreSQL and Redis kept running`, signal: restartSignal, began_epoch_ms: began, stopped_ms: Math.round(stoppedAt - began), ready_ms: Math.round(nowMs() - began) };
      },
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/**
 * The limit: one Node process broadcasting from memory (bench/peers/limit.mjs). restart()
 * kills it (restartSignal, as for the peer) and starts a new one: events, sequence and counters are gone, the setup
 * (teams, keys, sessions, topics) is read back from its file.
 */
export async function startLimit({ work, host, log, restartSignal = "SIGKILL" }) {
  const dir = join(work, "limit");
  mkdirSync(dir, { recursive: true });
  const adminToken = `bench-${randomBytes(8).toString("hex")}`;
  const node = nodeProcess({ script: join(peersDir, "limit.mjs"), env: { ADMIN_TOKEN: adminToken, STATE_FILE: join(dir, "setup.json") }, logFile: join(dir, "limit.log"), label: "node: limit" });
  const port = await freePort(host, 0);
  await node.start(port);
  log(`limit on ${node.base}`);
  return {
    name: "limit",
    title: "Limit (in-memory broadcast)",
    base: node.base,
    streamBase: node.base,
    adminToken,
    processes: () => node.processes(),
    describe: {
      what: "One Node process (node:http) that answers a callback 202 and broadcasts it to the topic's streams from memory: no queue, no database, no durability (the last 1,000 events per topic are kept in memory for Last-Event-ID, like Switchboard's STREAM_HISTORY). Only the setup (teams, keys, sessions, topics) is written to a file, so a restart keeps it. Same fan-out code as the peer's SSE server.",
      processes: "1 Node process",
      logs: dir,
    },
    async restart() {
      const began = nowMs();
      await node.stop(restartSignal);
      const stoppedAt = nowMs();
      await node.start(port);
      return { how: `${killHow(restartSignal)} the process, then a new process on the same port: all events and counters lost, the setup read back from its file`, signal: restartSignal, began_epoch_ms: began, stopped_ms: Math.round(stoppedAt - began), ready_ms: Math.round(nowMs() - began) };
    },
    stop: () => node.stop(),
  };
}

export const SYSTEMS = { switchboard: startSwitchboard, peer: startPeer, limit: startLimit };
