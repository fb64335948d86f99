import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

/** Helpers for the runner's tests: the built CLI as a process, inline agents, a proxy that can hold or refuse requests. */

const CLI = join(process.cwd(), "cli", "dist", "switchboard.mjs");

/** An agent written inline: `node -e <script>`. */
export const nodeAgent = (script: string): string[] => [process.execPath, "-e", script];

export interface RunningCli {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  waitFor(check: (stdout: string) => boolean, ms: number, what: string): Promise<void>;
}

/** `switchboard <args>`; output decoded as a stream (a per-chunk decode would split multibyte characters itself). */
export function startCli(args: string[], env: Record<string, string>): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const out = { stdout: "", stderr: "" };
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out.stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (out.stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, ...out })),
  );
  const waitFor = async (check: (stdout: string) => boolean, ms: number, what: string) => {
    const until = Date.now() + ms;
    while (!check(out.stdout)) {
      if (Date.now() > until || child.exitCode !== null) throw new Error(`no ${what} within ${ms} ms:\nstdout: ${out.stdout.slice(-2000)}\nstderr: ${out.stderr.slice(-2000)}`);
      await sleep(25);
    }
  };
  return { child, out, exited, waitFor };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether a process is still alive (signal 0 only checks). A zombie is not: an orphan's is
 * reaped by init, which a container's first process may never do.
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true; // no /proc (macOS): signal 0 is all there is
  }
}

export async function readWorkspace(baseUrl: string, key: string, sid: string, tid: string, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${baseUrl}/v1/sessions/${sid}/topics/${tid}/workspace/${path}`, { headers: { Authorization: `Bearer ${key}` } });
  return { status: res.status, text: await res.text() };
}

/**
 * What the proxy does with one request: pass it on (after `delayMs`), or answer `status`
 * itself (with a Retry-After of `retryAfter` seconds, if given); with `statusAfter`, pass it
 * on and answer that status in place of the Worker's answer (a request handled whose answer
 * is lost on the way back); with `rewrite`, pass it on and answer the Worker's answer with its
 * body rewritten.
 */
export type ProxyPlan = { delayMs?: number; status?: number; retryAfter?: number; statusAfter?: number; rewrite?: (body: string) => string } | undefined;

const DROPPED = new Set(["connection", "keep-alive", "transfer-encoding", "host", "content-length", "content-encoding"]);

/** A local HTTP proxy in front of the dev Worker; `plan` decides per request (method and path). */
export async function startProxy(upstream: string, plan: (req: IncomingMessage) => ProxyPlan) {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const p = plan(req);
    if (p?.delayMs) await sleep(p.delayMs);
    if (p?.status) {
      res.writeHead(p.status, { "Content-Type": "application/problem+json", ...(p.retryAfter === undefined ? {} : { "Retry-After": String(p.retryAfter) }) });
      res.end(JSON.stringify({ title: "from the test proxy", status: p.status }));
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && !DROPPED.has(k)) headers[k] = v;
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const upstreamRes = await fetch(`${upstream}${req.url}`, { method: req.method, headers, body: hasBody ? Buffer.concat(chunks) : undefined });
    const answered = Buffer.from(await upstreamRes.arrayBuffer());
    const body = p?.rewrite ? Buffer.from(p.rewrite(answered.toString("utf8"))) : answered;
    if (p?.statusAfter) {
      res.writeHead(p.statusAfter, { "Content-Type": "application/problem+json" });
      res.end(JSON.stringify({ title: "from the test proxy, after the Worker answered", status: p.statusAfter }));
      return;
    }
    const outHeaders: Record<string, string> = {};
    upstreamRes.headers.forEach((v, k) => {
      if (!DROPPED.has(k)) outHeaders[k] = v;
    });
    res.writeHead(upstreamRes.status, outHeaders);
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
