// What the peers share: the subset of Switchboard's HTTP contract the bench uses
// (shared/DESIGN.md, "HTTP contract"), in plain node:http so the peers pay no framework cost
// that would hide what their architecture costs.
import { createHash, randomBytes } from "node:crypto";

export const MAX_BODY_BYTES = 1 << 20; // 413 over 1 MiB, like Switchboard
export const RETRY_MS = 2000; // the `retry:` Switchboard's hubs send
export const HEARTBEAT_MS = Number(process.env.HEARTBEAT_MS ?? 15_000);

export class HttpError extends Error {
  constructor(status, title, detail) {
    super(detail ?? title);
    this.status = status;
    this.title = title;
  }
}

export function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

/** problem+json, like Switchboard's errors. */
export function sendProblem(res, e) {
  const status = e instanceof HttpError ? e.status : 500;
  const text = JSON.stringify({ type: "about:blank", title: e instanceof HttpError ? e.title : "Internal error", status, detail: e instanceof HttpError ? e.message : "internal error" });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "Content-Type": "application/problem+json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
  if (status >= 500) console.error(e?.stack ?? e);
}

export async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, "Payload too large");
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "Validation failed", "The body is not valid JSON.");
  }
}

export function bearer(req) {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
  if (m) return m[1];
  // EventSource cannot send headers: Switchboard takes ?access_token= on streams.
  return new URL(req.url, "http://x").searchParams.get("access_token");
}

/** Keys are stored hashed, as in Switchboard. */
export const hashKey = (key) => createHash("sha256").update(key).digest("hex");
export const newKey = () => `sk_${randomBytes(24).toString("base64url")}`;
export const newId = (prefix) => `${prefix}_${randomBytes(8).toString("hex")}`;

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export function clientId(value, what) {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string" || !ID.test(value)) throw new HttpError(400, "Validation failed", `${what} is not a valid id.`);
  return value;
}

/**
 * One event, or {events: [...]} (up to 100). Only the envelope is checked, not each type's
 * data schema as Switchboard's zod schemas do; the peers take topic-level events only (the
 * bench sends `usage.reported`), so topic_id is required.
 */
export function parseCallbackBody(body) {
  const events = Array.isArray(body?.events) ? body.events : [body];
  if (events.length === 0 || events.length > 100) throw new HttpError(400, "Validation failed", "1 to 100 events.");
  for (const e of events) {
    if (typeof e?.id !== "string" || e.id.length === 0 || e.id.length > 256) throw new HttpError(400, "Validation failed", "id is required.");
    if (typeof e.type !== "string" || e.type.length === 0) throw new HttpError(400, "Validation failed", "type is required.");
    clientId(e.session_id, "session_id");
    if (clientId(e.topic_id, "topic_id") === null) throw new HttpError(400, "Validation failed", "topic_id is required (the peers take topic-level events only).");
    if (e.data !== undefined && (typeof e.data !== "object" || e.data === null)) throw new HttpError(400, "Validation failed", "data must be an object.");
  }
  return events;
}

/** The usage an event adds to its topic: {step, tools: [{name, calls}]} or null. */
export function usageOf(event) {
  if (event.type !== "usage.reported" || typeof event.data?.step !== "string" || !Array.isArray(event.data.tools)) return null;
  const tools = event.data.tools.filter((t) => typeof t?.name === "string" && Number.isFinite(t.calls)).map((t) => ({ name: t.name, calls: Math.trunc(t.calls) }));
  return tools.length ? { step: event.data.step, tools } : null;
}

/**
 * A topic's summary in the shape of Switchboard's (GET …/topics/:tid and the SSE snapshot),
 * reduced to what the peers keep: tool calls summed per step.
 */
export function topicSummary({ id, session_id, created_at, tools }) {
  const steps = {};
  for (const t of tools) {
    steps[t.step] ??= { tools: [] };
    steps[t.step].tools.push({ name: t.tool, calls: Number(t.calls) });
  }
  return { id, session_id, status: "created", current_step: null, hypothesis: null, created_at, updated_at: created_at, steps, alphas: [] };
}

// Server-sent events, byte for byte the format of src/lib/sse.ts.
export const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache, no-transform",
  "X-Accel-Buffering": "no",
};
export function sseEvent({ id, event, data }) {
  let out = "";
  if (id !== undefined) out += `id: ${id}\n`;
  if (event) out += `event: ${event}\n`;
  const text = typeof data === "string" ? data : JSON.stringify(data);
  for (const line of text.split("\n")) out += `data: ${line}\n`;
  return Buffer.from(`${out}\n`);
}
export const sseRetry = (ms) => Buffer.from(`retry: ${ms}\n\n`);
export const HEARTBEAT = Buffer.from(": heartbeat\n\n");

/** Last-Event-ID (header or ?last_event_id=): a sequence number, null when absent, or "invalid". */
export function lastEventId(req) {
  const raw = req.headers["last-event-id"] ?? new URL(req.url, "http://x").searchParams.get("last_event_id");
  if (raw === undefined || raw === null || raw === "") return null;
  return /^\d{1,15}$/.test(String(raw).trim()) ? Number(String(raw).trim()) : "invalid";
}

/** The Redis channel of one topic: an SSE server subscribes to the topics it streams. */
export const channelOf = (team, sid, tid) => `topic:${team}:${sid}:${tid}`;

export const TOPIC_STREAM = /^\/(?:v1\/sessions\/([^/]+)\/topics\/([^/]+)\/stream|alpha\/discovery\/([^/]+)\/([^/]+)\/stream)$/;

/**
 * Graceful stop on SIGTERM, as a deploy or `systemctl restart` sends it: stop accepting,
 * end the streams (clients reconnect with Last-Event-ID), let requests in flight finish
 * (at most 5 s), then `cleanup` and exit.
 */
export function stopOnSigterm(server, { endStreams = () => {}, cleanup = async () => {} } = {}) {
  let stopping = false;
  // Keep-alive connections would keep the server open: answers from now on close theirs,
  // and connections are closed as soon as they are idle.
  server.prependListener("request", (_req, res) => {
    if (stopping) res.shouldKeepAlive = false;
  });
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 5000).unref();
    server.close();
    endStreams();
    const idle = setInterval(() => server.closeIdleConnections(), 20);
    server.closeIdleConnections();
    await new Promise((r) => server.once("close", r));
    clearInterval(idle);
    await cleanup().catch(() => {});
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
