// Plain node:http requests to the local Worker (127.0.0.1 only), over keep-alive agents
// sized by the caller, so the client's connection pool is never the hidden limit.
import http from "node:http";

export function agent(maxSockets) {
  return new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
}

const defaultAgent = agent(8);

/**
 * One request. Resolves { status, text, json() } or rejects on a network error or timeout.
 * `body` is a string (sent as JSON) or undefined.
 */
export function request(base, method, path, { token, body, agent: via = defaultAgent, timeoutMs = 30_000 } = {}) {
  const url = new URL(path, base);
  if (url.hostname !== "127.0.0.1") throw new Error(`bench requests go to 127.0.0.1 only, not ${url.hostname}`);
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    headers["Content-Length"] = Buffer.byteLength(body);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: via, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode, text, json: () => JSON.parse(text) });
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** A request whose answer must have status `expect`; returns the parsed JSON. */
export async function expectJson(base, method, path, expect, opts) {
  const res = await request(base, method, path, opts);
  if (res.status !== expect) throw new Error(`${method} ${path}: expected ${expect}, got ${res.status}: ${res.text.slice(0, 500)}`);
  return res.json();
}
