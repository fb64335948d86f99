// PostgreSQL and Redis for the peer, from Debian's packages (bench/setup.sh installs them),
// each started by the bench on 127.0.0.1 with its data in the run's temp dir, in its own
// process group, and stopped at the end. PostgreSQL refuses to run as root: as root, it
// runs as the `postgres` user the Debian package creates (else `nobody`).
import { spawn, spawnSync } from "node:child_process";
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { groupProcesses } from "./procs.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function tail(file, lines = 30) {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** The newest /usr/lib/postgresql/<version>/bin, or null. */
export function postgresBin() {
  try {
    const versions = readdirSync("/usr/lib/postgresql").filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/postgres`)).sort((a, b) => Number(b) - Number(a));
    return versions.length ? `/usr/lib/postgresql/${versions[0]}/bin` : null;
  } catch {
    return null;
  }
}

function redisBin() {
  for (const p of ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]) if (existsSync(p)) return p;
  return null;
}

/** What is missing to run the peer, as a message, or null. */
export function missingServices() {
  const missing = [];
  if (!postgresBin()) missing.push("PostgreSQL (/usr/lib/postgresql/*/bin/postgres)");
  if (!redisBin()) missing.push("redis-server");
  return missing.length ? `${missing.join(" and ")} not installed: run \`bash bench/setup.sh\` (Debian packages postgresql, redis-server)` : null;
}

function unprivilegedUser() {
  for (const name of ["postgres", "nobody"]) {
    const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith(`${name}:`));
    if (line) {
      const [, , uid, gid] = line.split(":");
      return { name, uid: Number(uid), gid: Number(gid) };
    }
  }
  throw new Error("no postgres or nobody user to run PostgreSQL as");
}

/** Spawns detached (its own process group); stop() signals the group, waits, then SIGKILLs. */
function spawnGroup(cmd, args, { logFile, env, uid, gid, cwd }) {
  const fd = openSync(logFile, "a");
  const child = spawn(cmd, args, { stdio: ["ignore", fd, fd], detached: true, env: env ?? process.env, uid, gid, cwd });
  closeSync(fd);
  let exited = null;
  child.on("exit", (code, signal) => (exited = { code, signal }));
  const kill = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {}
  };
  const onExit = () => kill("SIGKILL");
  process.on("exit", onExit);
  return {
    pid: child.pid,
    exited: () => exited,
    async stop(signal = "SIGTERM", graceMs = 10_000) {
      kill(signal);
      for (let t = 0; t < graceMs && groupProcesses(child.pid).length > 0; t += 100) await sleep(100);
      if (groupProcesses(child.pid).length > 0) kill("SIGKILL");
      for (let i = 0; i < 50 && groupProcesses(child.pid).length > 0; i++) await sleep(100);
      process.off("exit", onExit);
    },
  };
}

/**
 * initdb + postgres on 127.0.0.1:port, data under dir. Defaults otherwise (fsync and
 * synchronous_commit on: an accepted callback is on disk), max_connections raised for the
 * receiver's and SSE server's pools. Returns { url, pgid, stop() }.
 */
export async function startPostgres({ dir, port, logFile, schemaFile }) {
  const bin = postgresBin();
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? unprivilegedUser() : null;
  const data = join(dir, "pgdata");
  const sock = join(dir, "pgsock");
  for (const d of [dir, sock]) mkdirSync(d, { recursive: true });
  if (user) {
    chownSync(dir, user.uid, user.gid);
    chownSync(sock, user.uid, user.gid);
  }
  const ids = user ? { uid: user.uid, gid: user.gid } : {};
  const env = { ...process.env, LC_ALL: "C", LANG: "C", HOME: dir };
  const fd = openSync(logFile, "a");
  const init = spawnSync(join(bin, "initdb"), ["-D", data, "-U", "bench", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"], { stdio: ["ignore", fd, fd], env, cwd: dir, timeout: 120_000, ...ids });
  closeSync(fd);
  if (init.status !== 0) throw new Error(`initdb failed (${init.status ?? init.error?.message}):\n${tail(logFile)}`);
  const server = spawnGroup(join(bin, "postgres"), ["-D", data, "-p", String(port), "-k", sock, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "shared_buffers=128MB"], { logFile, env, cwd: dir, ...ids });
  const url = `postgres://bench@127.0.0.1:${port}/postgres`;
  const psql = (args) => spawnSync(join(bin, "psql"), ["-h", "127.0.0.1", "-p", String(port), "-U", "bench", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", ...args], { encoding: "utf8", env, timeout: 60_000 });
  for (let i = 0; ; i++) {
    if (server.exited()) throw new Error(`postgres exited (${JSON.stringify(server.exited())}):\n${tail(logFile)}`);
    if (psql(["-c", "SELECT 1"]).status === 0) break;
    if (i > 300) {
      await server.stop("SIGINT");
      throw new Error(`postgres did not accept connections within 60 s:\n${tail(logFile)}`);
    }
    await sleep(200);
  }
  const schema = psql(["-f", schemaFile]);
  if (schema.status !== 0) {
    await server.stop("SIGINT");
    throw new Error(`schema failed: ${schema.stderr}`);
  }
  // SIGINT is PostgreSQL's "fast" shutdown.
  return { url, pgid: server.pid, stop: () => server.stop("SIGINT") };
}

/** redis-server on 127.0.0.1:port, no persistence (pub/sub only). Returns { url, pgid, stop() }. */
export async function startRedis({ dir, port, logFile }) {
  mkdirSync(dir, { recursive: true });
  const server = spawnGroup(redisBin(), ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--protected-mode", "yes"], { logFile, cwd: dir });
  const { createConnection } = await import("node:net");
  const ping = () =>
    new Promise((resolve) => {
      const s = createConnection({ host: "127.0.0.1", port }, () => s.write("PING\r\n"));
      s.setTimeout(1000, () => (s.destroy(), resolve(false)));
      s.on("data", (d) => (s.destroy(), resolve(d.toString().startsWith("+PONG"))));
      s.on("error", () => resolve(false));
    });
  for (let i = 0; !(await ping()); i++) {
    if (server.exited()) throw new Error(`redis-server exited (${JSON.stringify(server.exited())}):\n${tail(logFile)}`);
    if (i > 150) {
      await server.stop();
      throw new Error(`redis-server did not answer PING within 30 s:\n${tail(logFile)}`);
    }
    await sleep(200);
  }
  return { url: `redis://127.0.0.1:${port}`, pgid: server.pid, stop: () => server.stop() };
}

export { spawnGroup };
