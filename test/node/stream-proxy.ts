import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local proxy in front of the dev Worker that can take the team stream away: pass it
 * through, drop the open ones, answer 503 for it (a Worker that is restarting), or 404 (an
 * older Worker without it). Every other request passes through untouched.
 */
export interface StreamProxy {
  url: string;
  mode: "pass" | "unavailable" | "no-stream";
  /** Each request for GET /v1/stream, in order: its Last-Event-ID and what it was answered. */
  streamRequests: { lastEventId: string | null; status: number }[];
  /** Cuts every stream open now (the client sees the connection end). */
  dropStreams(): void;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "host", "content-length"]);

export async function startStreamProxy(upstream: string): Promise<StreamProxy> {
  const open = new Set<ServerResponse>();
  const proxy: StreamProxy = {
    url: "",
    mode: "pass",
    streamRequests: [],
    dropStreams() {
      for (const res of open) res.destroy();
      open.clear();
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server = createServer(async (req, res) => {
    const isStream = (req.url ?? "").split("?")[0] === "/v1/stream";
    if (isStream && proxy.mode !== "pass") {
      const status = proxy.mode === "no-stream" ? 404 : 503;
      proxy.streamRequests.push({ lastEventId: (req.headers["last-event-id"] as string | undefined) ?? null, status });
      const body = status === 404 ? { type: "about:blank", title: "Not found", status, detail: "No route GET /v1/stream." } : { title: "Service unavailable", status };
      res.writeHead(status, { "Content-Type": "application/problem+json" }).end(JSON.stringify(body));
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string" && !HOP_BY_HOP.has(name)) headers.set(name, value);
    const aborted = new AbortController();
    res.on("close", () => aborted.abort());
    try {
      const answer = await fetch(`${upstream}${req.url}`, { method: req.method, headers, body: chunks.length > 0 ? Buffer.concat(chunks) : undefined, signal: aborted.signal });
      if (isStream) proxy.streamRequests.push({ lastEventId: headers.get("last-event-id"), status: answer.status });
      const out: Record<string, string> = {};
      answer.headers.forEach((value, name) => {
        if (!HOP_BY_HOP.has(name) && name !== "content-encoding") out[name] = value;
      });
      res.writeHead(answer.status, out);
      res.flushHeaders();
      if (isStream) open.add(res);
      const reader = answer.body?.getReader();
      for (;;) {
        const chunk = await reader?.read();
        if (!chunk || chunk.done) break;
        res.write(chunk.value);
      }
      res.end();
    } catch {
      res.destroy();
    } finally {
      open.delete(res);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
