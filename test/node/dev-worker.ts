import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { groupProcesses, listeningPorts } from "../../bench/lib/procs.mjs";

export interface DevWorker {
  url: string;
  port: number;
  adminToken: string;
  persist: string;
  stop(): Promise<void>;
  /** The runtime's own address behind wrangler's proxy (the Worker without the dev-only hop), or null. */
  runtimeUrl(): Promise<string | null>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/**
 * The real Worker under `wrangler dev` on 127.0.0.1, with fresh local state, in its own
 * process group (wrangler leaves workerd behind when only it is killed).
 */
export async function startDevWorker(): Promise<DevWorker> {
  const persist = mkdtempSync(join(tmpdir(), "switchboard-dev-"));
  const port = await freePort();
  const adminToken = randomBytes(12).toString("hex");
  const wrangler = join(process.cwd(), "node_modules", ".bin", "wrangler");
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" };
  const migrate = spawnSync(wrangler, ["d1", "migrations", "apply", "switchboard", "--local", "--persist-to", persist], { env, encoding: "utf8" });
  if (migrate.status !== 0) throw new Error(`migrations failed: ${migrate.stderr}`);
  const child: ChildProcess = spawn(
    wrangler,
    ["dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", persist, "--test-scheduled", "--show-interactive-dev-session=false", "--var", `ADMIN_TOKEN:${adminToken}`, "--var", `SECRETS_KEY:${randomBytes(32).toString("base64")}`],
    { env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try {
      process.kill(-(child.pid as number), "SIGTERM");
    } catch {}
    await new Promise((r) => setTimeout(r, 300));
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {}
    rmSync(persist, { recursive: true, force: true });
  };
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch {}
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`wrangler dev did not start:\n${output.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const runtimeUrl = async () => {
    for (const p of groupProcesses(child.pid as number).filter((x) => x.comm === "workerd")) {
      for (const other of listeningPorts(p.pid).filter((n) => n !== port)) {
        const res = await fetch(`http://127.0.0.1:${other}/healthz`).catch(() => null);
        if (res?.ok && (await res.text()).includes("ok")) return `http://127.0.0.1:${other}`;
      }
    }
    return null;
  };
  return { url, port, adminToken, persist, stop, runtimeUrl };
}

/** A team, a session and a topic on the dev Worker. */
export async function setUpTeam(worker: DevWorker, sessionId = "s1", topicId = "t1") {
  const post = async (path: string, key: string, body: unknown, method = "POST") => {
    const res = await fetch(`${worker.url}${path}`, { method, headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const team = (await post("/v1/admin/teams", worker.adminToken, { name: "cli" })) as { team_id: string; api_key: string };
  await post("/v1/sessions", team.api_key, { id: sessionId });
  await post(`/v1/sessions/${sessionId}/topics`, team.api_key, { id: topicId });
  return { ...team, sessionId, topicId, post };
}

export async function getJson(worker: DevWorker, path: string, key: string): Promise<any> {
  const res = await fetch(`${worker.url}${path}`, { headers: { Authorization: `Bearer ${key}` } });
  return res.json();
}

export async function eventually<T>(fn: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last = await fn();
  while (!check(last)) {
    if (Date.now() > until) throw new Error(`condition not met; last: ${JSON.stringify(last).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 100));
    last = await fn();
  }
  return last;
}

/** A new team on `worker`: its operator key, and a JSON call with it that throws on any status but 2xx. */
export async function newTeamOn(worker: DevWorker, name: string): Promise<{ key: string; call: (method: string, path: string, body?: unknown) => Promise<any> }> {
  const res = await fetch(`${worker.url}/v1/admin/teams`, { method: "POST", headers: { Authorization: `Bearer ${worker.adminToken}`, "Content-Type": "application/json" }, body: JSON.stringify({ name }) });
  const { api_key: key } = (await res.json()) as { api_key: string };
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${worker.url}${path}`, { method, headers: { Authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return { key, call };
}
