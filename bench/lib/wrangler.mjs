// Starts and stops the Worker under `wrangler dev`, in its own process group: wrangler
// leaves workerd and esbuild children behind when only the wrapper is killed
// (shared/DESIGN.md), so the whole group is stopped, also on error and SIGINT.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { runtimeV8Flags } from "../../scripts/runtime-flags.mjs";
import { groupProcesses } from "./procs.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `port` if nothing listens on it on `host`, else one the OS picks. */
export async function freePort(host, port = 0) {
  const tryListen = (p) =>
    new Promise((resolve) => {
      const srv = createServer();
      srv.once("error", () => resolve(null));
      srv.listen(p, host, () => {
        const got = srv.address().port;
        srv.close(() => resolve(got));
      });
    });
  return (port && (await tryListen(port))) || (await tryListen(0));
}

function tail(file, lines = 40) {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** `wrangler d1 migrations apply switchboard --local --persist-to <dir>`; throws on failure. */
export function applyMigrations({ root, persistDir, logFile, config }) {
  const wrangler = join(root, "node_modules", ".bin", "wrangler");
  const fd = openSync(logFile, "a");
  try {
    const res = spawnSync(wrangler, ["d1", "migrations", "apply", "switchboard", "--local", "--persist-to", persistDir, ...(config ? ["--config", config] : [])], {
      cwd: root,
      stdio: ["ignore", fd, fd],
      env: { ...process.env, CI: "1", WRANGLER_SEND_METRICS: "false" },
      timeout: 120_000,
    });
    if (res.status !== 0) throw new Error(`migrations failed (status ${res.status}):\n${tail(logFile)}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Spawns `wrangler dev` detached (its pid is the process group id) with output to logFile.
 * `config`: another wrangler.toml (see restartableConfig) instead of the project's.
 * Returns { pid, base, stop }. stop() sends SIGTERM to the group, waits up to 5 s for it to
 * empty, then SIGKILLs what is left. A synchronous SIGKILL also runs at process exit.
 */
export async function startWorker({ root, host, port, inspectorPort, persistDir, vars, logFile, logLevel, config }) {
  const wrangler = join(root, "node_modules", ".bin", "wrangler");
  const args = ["dev", "--ip", host, "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", persistDir, "--show-interactive-dev-session=false"];
  if (config) args.push("--config", config);
  if (logLevel) args.push("--log-level", logLevel);
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  const fd = openSync(logFile, "a");
  const child = spawn(wrangler, args, { cwd: root, stdio: ["ignore", fd, fd], detached: true, env: { ...process.env, WRANGLER_SEND_METRICS: "false", X_LOCAL_OBSERVABILITY: process.env.X_LOCAL_OBSERVABILITY ?? "false", MINIFLARE_WORKERD_V8_FLAGS: runtimeV8Flags() } });
  closeSync(fd);
  const pid = child.pid;
  let exited = null;
  child.on("exit", (code, signal) => (exited = { code, signal }));

  const killGroup = (signal) => {
    try {
      process.kill(-pid, signal);
    } catch {}
  };
  const onExit = () => killGroup("SIGKILL");
  process.on("exit", onExit);

  let stopped = false;
  async function stop() {
    if (stopped) return;
    stopped = true;
    killGroup("SIGTERM");
    for (let i = 0; i < 50 && groupProcesses(pid).length > 0; i++) await sleep(100);
    if (groupProcesses(pid).length > 0) killGroup("SIGKILL");
    for (let i = 0; i < 20 && groupProcesses(pid).length > 0; i++) await sleep(100);
    process.off("exit", onExit);
  }

  const base = `http://${host}:${port}`;
  const deadline = Date.now() + 120_000;
  for (let i = 0; i < 1200 && Date.now() < deadline; i++) {
    if (exited) {
      await stop();
      throw new Error(`wrangler dev exited (${JSON.stringify(exited)}):\n${tail(logFile)}`);
    }
    try {
      const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status === 200) return { pid, base, stop, exited: () => exited };
    } catch {}
    await sleep(250);
  }
  await stop();
  throw new Error(`the Worker did not answer GET /healthz with 200 within 120 s:\n${tail(logFile)}`);
}

/** `wrangler --version`, e.g. "4.156.0". */
export function wranglerVersion(root) {
  const res = spawnSync(join(root, "node_modules", ".bin", "wrangler"), ["--version"], { cwd: root, encoding: "utf8", env: { ...process.env, WRANGLER_SEND_METRICS: "false" }, timeout: 60_000 });
  return (res.stdout || "").trim().split("\n").pop()?.trim() || "unknown";
}

/**
 * A copy of the project's wrangler.toml in `dir`, with its paths made absolute, for
 * `wrangler dev --config`: touching the copy makes wrangler dev reload the Worker as a
 * redeploy would (bench/lib/systems.mjs), without touching the project's files, which other
 * `wrangler dev` processes on this checkout watch too.
 */
export function restartableConfig(root, dir) {
  const text = readFileSync(join(root, "wrangler.toml"), "utf8");
  const main = /^main\s*=\s*"([^"]+)"/m.exec(text)?.[1];
  if (!main) throw new Error("wrangler.toml has no main");
  const copy = text.replace(/^main\s*=\s*"[^"]+"/m, `main = "${join(root, main)}"`).replace(/^migrations_dir\s*=\s*"([^"]+)"/gm, (_, d) => `migrations_dir = "${join(root, d)}"`);
  const file = join(dir, "wrangler.toml");
  writeFileSync(file, `# Copy of ${join(root, "wrangler.toml")} for the bench (paths made absolute).\n${copy}`);
  return file;
}
