import { createServer, type IncomingMessage } from "node:http";
import type { TestProject } from "vitest/node";

/**
 * Runs in Node before the workerd tests: a real HTTP receiver on 127.0.0.1 for outgoing
 * notifications. `POST /hook/<name>` records the request; `?fail=N` answers the first N with
 * `?status=` (default 500, with `?retry_after=`), `?status=` alone answers that every time.
 * `?hold=1` records the request at once but holds the answer until `POST /release/<name>`
 * (so a test can look at the Worker while a delivery is in flight, without timing guesses).
 * `GET /received/<name>` lists what was recorded. Tests read its port with `inject`.
 */
declare module "vitest" {
  export interface ProvidedContext {
    receiverPort: number;
  }
}

const read = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => resolve(body));
  });

export default async function setup(project: TestProject) {
  const received = new Map<string, { headers: Record<string, string | string[] | undefined>; body: string; status: number }[]>();
  // Answers held by `?hold=1`, by name; `POST /release/<name>` sends them all.
  const held = new Map<string, (() => void)[]>();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const [, kind, name = ""] = url.pathname.split("/");
    if (req.method === "GET" && kind === "received") {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify(received.get(name) ?? []));
      return;
    }
    if (req.method === "POST" && kind === "release") {
      const waiting = held.get(name) ?? [];
      held.delete(name);
      for (const answer of waiting) answer();
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ released: waiting.length }));
      return;
    }
    if (req.method !== "POST" || kind !== "hook") {
      res.statusCode = 404;
      res.end();
      return;
    }
    const body = await read(req);
    const list = received.get(name) ?? [];
    const fail = Number(url.searchParams.get("fail") ?? "0");
    const given = url.searchParams.get("status");
    const status = given && !url.searchParams.has("fail") ? Number(given) : list.length < fail ? Number(given ?? 500) : 200;
    list.push({ headers: req.headers, body, status });
    received.set(name, list);
    const retryAfter = url.searchParams.get("retry_after");
    if (retryAfter && status !== 200) res.setHeader("Retry-After", retryAfter);
    const answer = () => {
      res.statusCode = status;
      res.end(status === 200 ? "ok" : "no");
    };
    if (url.searchParams.get("hold") === "1") held.set(name, [...(held.get(name) ?? []), answer]);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  project.provide("receiverPort", typeof address === "object" && address ? address.port : 0);
  return () =>
    new Promise<void>((resolve) => {
      // A test that failed before releasing would otherwise keep close() waiting forever.
      for (const answers of held.values()) for (const answer of answers) answer();
      server.close(() => resolve());
    });
}
