import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import type { CreatedTeam } from "../src/routes/admin";

export const ADMIN = "test-admin-token";
const BASE = "https://switchboard.test";

/** Calls the Worker through its real fetch handler. */
export function call(path: string, init: RequestInit & { key?: string; json?: unknown } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.key) headers.set("Authorization", `Bearer ${init.key}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(init.json);
  }
  return exports.default.fetch(new Request(`${BASE}${path}`, { ...init, headers, body }));
}

/** Reads a JSON body (every response body must be read or cancelled in these tests). */
export async function json<T = any>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

export async function createTeam(name = "team"): Promise<CreatedTeam> {
  const res = await call("/v1/admin/teams", { method: "POST", key: ADMIN, json: { name } });
  if (res.status !== 201) throw new Error(`team create: ${res.status} ${await res.text()}`);
  return json<CreatedTeam>(res);
}

export async function createKey(operatorKey: string, scopes: string[]): Promise<string> {
  const res = await call("/v1/keys", { method: "POST", key: operatorKey, json: { name: scopes.join("+"), scopes } });
  if (res.status !== 201) throw new Error(`key create: ${res.status} ${await res.text()}`);
  return (await json<{ key: string }>(res)).key;
}

export async function createSession(key: string, id: string, extra: Record<string, unknown> = {}) {
  const res = await call("/v1/sessions", { method: "POST", key, json: { id, ...extra } });
  if (res.status !== 201) throw new Error(`session create: ${res.status} ${await res.text()}`);
  return json(res);
}

export async function postEvents(key: string, events: unknown[]): Promise<Response> {
  return call("/v1/callbacks", { method: "POST", key, json: { events } });
}

/** Polls until `check` passes: the queue applies callbacks asynchronously. */
export async function eventually<T>(fn: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: T = await fn();
  while (!check(last)) {
    if (Date.now() > until) throw new Error(`condition not met in ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
    last = await fn();
  }
  return last;
}

export async function summary(key: string, sid: string) {
  return json(await call(`/v1/sessions/${sid}`, { key }));
}

export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
  comment?: string;
  retry?: number;
}

/**
 * A real SSE client over the Worker's response body: parses the wire format byte by byte
 * as the spec lays it out (fields, blank-line dispatch, comments).
 */
export class SseReader {
  private buffer = "";
  private decoder = new TextDecoder();
  readonly raw: string[] = [];
  private reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(res: Response) {
    if (!res.body) throw new Error("no body");
    this.reader = res.body.getReader();
  }

  /** Returns the next message (event, comment or retry block), waiting up to `timeoutMs`. */
  async next(timeoutMs = 5000): Promise<SseMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        return parseBlock(block);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SSE message within ${timeoutMs} ms; buffered: ${JSON.stringify(this.buffer)}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const chunk = await Promise.race([
        this.reader.read(),
        new Promise<"timeout">((r) => {
          timer = setTimeout(() => r("timeout"), left);
        }),
      ]);
      if (timer !== undefined) clearTimeout(timer);
      if (chunk === "timeout") continue;
      if (chunk.done) throw new Error("stream ended");
      const text = this.decoder.decode(chunk.value, { stream: true });
      this.raw.push(text);
      this.buffer += text;
    }
  }

  /** The next message that is an event (skips heartbeat comments). */
  async nextEvent(timeoutMs = 5000): Promise<SseMessage> {
    for (;;) {
      const m = await this.next(timeoutMs);
      if (m.event !== undefined || m.data !== "") return m;
    }
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => {});
  }
}

function parseBlock(block: string): SseMessage {
  const msg: SseMessage = { data: "" };
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      msg.comment = line.slice(1).trim();
      continue;
    }
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") msg.id = value;
    else if (field === "event") msg.event = value;
    else if (field === "data") data.push(value);
    else if (field === "retry") msg.retry = Number(value);
  }
  msg.data = data.join("\n");
  return msg;
}

let counter = 0;
/** A unique id per call, so tests never collide. */
export function uid(prefix = "id"): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}

/** A session with one topic, ready for events. */
export async function sessionWithTopic(key: string, tid = "t1") {
  const sid = uid("s");
  await createSession(key, sid);
  const res = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key, json: { id: tid } });
  if (res.status !== 201) throw new Error(`topic create: ${res.status} ${await res.text()}`);
  await res.json();
  return { sid, tid };
}

export function stepEvent(sid: string, tid: string, type: string, data: Record<string, unknown>, id = uid("e")) {
  return { id, type, session_id: sid, topic_id: tid, occurred_at: new Date().toISOString(), data };
}

/** Waits until the topic hub has logged `seq` events. */
export async function waitForTopicSeq(key: string, sid: string, tid: string, check: (topic: any) => boolean) {
  return eventually(async () => json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key })), check);
}

/** The body every error carries (application/problem+json). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors: { path: string; message: string }[];
  request_id: string;
}

/**
 * Asserts `res` is a problem+json answer with `status` and exactly the documented fields,
 * its request id matching the header, and returns the parsed body (the body is consumed).
 */
export async function expectProblem(res: Response, status: number): Promise<Problem> {
  const text = await res.text();
  expect(res.status, `${res.status} ${text}`).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = JSON.parse(text) as Problem;
  expect(Object.keys(body).sort()).toEqual(["detail", "errors", "request_id", "status", "title", "type"]);
  expect(body).toMatchObject({ type: expect.stringMatching(/^https?:\/\/\S+$/), title: expect.any(String), status, detail: expect.any(String), errors: expect.any(Array) });
  expect(body.request_id).toMatch(/\S/);
  expect(body.request_id).toBe(res.headers.get("x-request-id"));
  return body;
}

/** The paths named by a problem's field errors. */
export function errorPaths(problem: Problem): string[] {
  return problem.errors.map((e) => e.path);
}

/** Cancels a body the test does not need (unread bodies break isolated storage). */
export async function drain(res: Response): Promise<Response> {
  await res.body?.cancel();
  return res;
}

/** A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes. */
export function newSigningSecret(): string {
  return `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
}

/** Hex SHA-256 of a string, as the Worker stores API keys. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Reads until the stream ends; fails if it is still open after `ms`. Returns what arrived. */
export async function expectEnd(res: Response, ms = 5000): Promise<string> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`the stream is still open after ${ms} ms`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const chunk = await Promise.race([reader.read(), new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), left)))]);
    clearTimeout(timer);
    if (chunk === "timeout") continue;
    if (chunk.done) return text;
    text += decoder.decode(chunk.value, { stream: true });
  }
}
