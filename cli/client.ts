import { AwsClient } from "aws4fetch";
import { type AgentEvent, eventSchema } from "../src/domain/events";
import { sentinelKey } from "../src/domain/sentinel";
import { secretKeyBytes, signPayload } from "../src/lib/standard-webhooks";
import { checkUrl } from "./config";
import { describeProblem, networkFailure, type Problem, UsageError } from "./errors";

/** Where an agent writes events it could not deliver: R2's S3-compatible API. */
export interface SentinelTarget {
  endpoint: string; // e.g. https://<account>.r2.cloudflarestorage.com
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  teamId: string;
  region?: string; // R2 takes "auto"
}

export interface ClientOptions {
  baseUrl: string;
  apiKey: string;
  /** The team's Standard Webhooks secret (`whsec_…`): callbacks and sentinels are signed with it. */
  signingSecret?: string;
  sentinel?: SentinelTarget;
  /**
   * Retries after the first try (default 5). Before retry n (from 0) it waits the server's
   * Retry-After when it sent one, else a random time up to minDelayMs × 2^n ("full jitter", so
   * many agents failing at once do not retry in step); either way at most maxDelayMs.
   */
  retries?: number;
  minDelayMs?: number; // default 500
  maxDelayMs?: number; // default 30 000
  /** Each attempt's limit (default 10 s): an endpoint that hangs is a failed try, retried, then a sentinel. */
  timeoutMs?: number;
  fetch?: typeof fetch;
  log?: (line: string) => void;
}

/** The part of a topic the runner reads (the full shape is `topicSchema` in src/routes/schemas.ts). */
export interface TopicSteps {
  steps: Partial<Record<string, { status: string; max_turns: number }>>;
}

/**
 * One call's overrides. `signal` (a Ctrl-C) stops the wait between tries and the try in flight
 * at once: the call rejects with an AbortError (`isAbort`), and `send` writes no sentinel.
 * `retries` and `timeoutMs` replace the client's for this call (see `callOptions`).
 */
export interface CallOptions {
  signal?: AbortSignal;
  retries?: number;
  timeoutMs?: number;
}

/** After a Ctrl-C, how long the one try a report still gets may take: the person is waiting for their prompt. */
export const INTERRUPTED_TIMEOUT_MS = 3000;

/**
 * What a call made during a run gets: before `interrupt` aborts, the client's retries, stopped
 * at once when it does; after it, one short try (then, for `send`, a sentinel when configured),
 * so that what happened is still reported without keeping the person waiting.
 */
export function callOptions(interrupt?: AbortSignal): CallOptions {
  return interrupt?.aborted ? { retries: 0, timeoutMs: INTERRUPTED_TIMEOUT_MS } : { signal: interrupt };
}

/** A call stopped by its `signal`. */
export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

const aborted = () => new DOMException("interrupted", "AbortError");

export type SendResult = { delivered: "callback"; accepted: number } | { delivered: "sentinel"; keys: string[]; error: string };

/** A refusal or failure the server answered; `problem` when the body is problem+json. */
export class HttpError extends Error {
  readonly problem: Problem | null;
  constructor(
    readonly status: number,
    readonly body: string,
    readonly retryAfterMs: number | null,
  ) {
    // `<title>: <detail>` as the people's commands print it.
    const { problem, message } = describeProblem(status, body);
    super(message);
    this.problem = problem;
  }
}

/**
 * The sentinel store (an S3 API: R2's) refused a sentinel or could not be reached, after the
 * callbacks could not be: its settings (SWITCHBOARD_SENTINEL_*) are at fault, not the API key
 * or the session. `status` and `code` are S3's answer (403 and `SignatureDoesNotMatch`, say);
 * null when there was none.
 */
export class SentinelStoreError extends Error {
  constructor(
    readonly status: number | null,
    readonly code: string | null,
    message: string,
  ) {
    super(message);
  }
}

/** The store's own error (S3's `<Error><Code>…</Code><Message>…</Message>`) as one, with the callbacks' failure before it. */
function sentinelStoreError(error: unknown, callbacks: string): SentinelStoreError {
  const because = `callbacks unreachable (${callbacks}), and the sentinel store`;
  if (!(error instanceof HttpError)) return new SentinelStoreError(null, null, `${because} could not be reached: ${error instanceof Error ? error.message : String(error)}`);
  const code = /<Code>([^<]*)<\/Code>/.exec(error.body)?.[1] ?? null;
  const detail = /<Message>([^<]*)<\/Message>/.exec(error.body)?.[1] ?? error.body.slice(0, 200).trim();
  return new SentinelStoreError(error.status, code, `${because} refused the event: HTTP ${error.status}${code ? ` ${code}` : ""}${detail ? `: ${detail}` : ""}`);
}

/** An attempt that got no answer in time; retried like a 503. */
export class TimeoutError extends Error {}

/**
 * fetch reached no server (connection refused, unknown host, a TLS handshake that failed, a
 * connection cut mid-answer): retried like a 503, then a sentinel. The message names the cause.
 */
export class NetworkError extends Error {}

/**
 * Whether trying again (and, when every try failed, a sentinel) may help: the platform was
 * busy or failed, or could not be reached in time. Anything else is final: a refusal, and
 * errors of our own making (a TypeError from an invalid URL fails every try alike, and a
 * sentinel of it would only hide it).
 */
function retryable(error: unknown): boolean {
  return (error instanceof HttpError && RETRYABLE.has(error.status)) || error instanceof TimeoutError || error instanceof NetworkError;
}

/** Events per `POST /v1/callbacks` (its `{events: [...]}` takes at most 100). */
const BATCH_EVENTS = 100;
/** The API's limit on a JSON body (`JSON_BODY_LIMIT` in src/app.ts): a larger one is 413. */
const BODY_LIMIT_BYTES = 1024 * 1024;
/** What a batch's body adds to its events: `{"events":[`, `]}` and a comma between two; rounded up. */
const ENVELOPE_BYTES = 64;

/** Statuses worth retrying: the platform was busy or failed, not the request. */
const RETRYABLE = new Set([408, 425, 429, 500, 502, 503, 504]);

/**
 * The agents' client: validates events with the server's own schemas, sends them singly or
 * in batches of up to 100 events and 1 MiB, signs them when given a secret, retries with backoff (honouring
 * Retry-After), and when every retry failed writes each event as a sentinel for the sweep.
 */
export class SwitchboardClient {
  private readonly fetch: typeof fetch;
  constructor(private readonly options: ClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  async send(events: AgentEvent | AgentEvent[], call: CallOptions = {}): Promise<SendResult> {
    const list = (Array.isArray(events) ? events : [events]).map((e) => ({ ...e, occurred_at: e.occurred_at ?? new Date().toISOString() }));
    for (const event of list) eventSchema.parse(event);
    if (list.length === 0) return { delivered: "callback", accepted: 0 };
    let accepted = 0;
    for (const [i, chunk] of batches(list)) {
      try {
        accepted += await this.post(chunk, call);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // A refusal (400, 401, 404 …) is final: a sentinel would be refused by the sweep too.
        // So is an error of ours: only an API that failed or could not be reached gets sentinels.
        if (!retryable(error) || !this.options.sentinel) throw error;
        const keys = await this.writeSentinels(list.slice(i), message);
        this.options.log?.(`callbacks unreachable (${message}); wrote ${keys.length} sentinel(s)`);
        return { delivered: "sentinel", keys, error: message };
      }
    }
    return { delivered: "callback", accepted };
  }

  private async post(events: AgentEvent[], call: CallOptions): Promise<number> {
    const body = JSON.stringify(events.length === 1 ? events[0] : { events });
    return this.withRetries("callback", call.retries ?? this.options.retries ?? 5, call.signal, async () => {
      const headers: Record<string, string> = { "Content-Type": "application/json", Authorization: `Bearer ${this.options.apiKey}` };
      if (this.options.signingSecret) {
        // A fresh webhook-id per try: the server refuses an id it has seen (replay).
        const id = `msg_${crypto.randomUUID()}`;
        const ts = Math.floor(Date.now() / 1000);
        Object.assign(headers, { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": await signPayload(this.options.signingSecret, id, ts, body) });
      }
      const text = await this.request(new URL("/v1/callbacks", this.options.baseUrl), { method: "POST", headers, body }, 202, call.timeoutMs, undefined, call.signal);
      return (JSON.parse(text) as { accepted: number }).accepted;
    });
  }

  /** One attempt: the body of an answer with status `ok` (any 2xx when omitted), else an HttpError; a TimeoutError past the limit. */
  private async request(url: URL | string, init: RequestInit, ok?: number, timeoutMs = this.options.timeoutMs ?? 10_000, fetcher = this.fetch, signal?: AbortSignal): Promise<string> {
    try {
      // The one signal bounds the body's arrival as well as the headers'; a Ctrl-C stops both.
      const limit = AbortSignal.timeout(timeoutMs);
      const res = await fetcher(url, { ...init, signal: signal ? AbortSignal.any([limit, signal]) : limit });
      const text = await res.text();
      if (ok === undefined ? res.ok : res.status === ok) return text;
      throw new HttpError(res.status, text, retryAfterMs(res.headers.get("Retry-After")));
    } catch (error) {
      if (signal?.aborted) throw aborted();
      if (error instanceof DOMException && error.name === "TimeoutError") throw new TimeoutError(`no answer within ${timeoutMs} ms`);
      const network = networkFailure(error);
      if (network !== null) throw new NetworkError(`could not reach ${new URL(url).origin}: ${network}`, { cause: error });
      throw error;
    }
  }

  /**
   * Runs `attempt` until it succeeds, at most 1 + `retries` times. A network error, a timeout
   * or a retryable status is tried again after the delay ClientOptions.retries describes;
   * anything else (a refusal, an error of ours) is final.
   */
  private async withRetries<T>(what: string, retries: number, signal: AbortSignal | undefined, attempt: () => Promise<T>, minDelayMs = this.options.minDelayMs ?? 500): Promise<T> {
    const maxDelayMs = this.options.maxDelayMs ?? 30_000;
    for (let n = 0; ; n++) {
      if (signal?.aborted) throw aborted();
      try {
        return await attempt();
      } catch (error) {
        if (isAbort(error)) throw error; // stopped: neither retried nor reported as a failed try
        const final = !retryable(error) || n >= retries;
        this.options.log?.(`${what} attempt ${n + 1} failed: ${error instanceof Error ? error.message : String(error)}${final ? "" : "; retrying"}`);
        if (final) throw error;
        const serverSays = error instanceof HttpError ? error.retryAfterMs : null;
        await sleep(Math.min(serverSays ?? Math.random() * minDelayMs * 2 ** n, maxDelayMs), signal);
      }
    }
  }

  /** Writes each event to `callback-sentinels/alpha/{team}/{session}/{topic|-}/{event}.json`, signed like a callback. */
  private async writeSentinels(events: AgentEvent[], callbacks: string): Promise<string[]> {
    const target = this.options.sentinel as SentinelTarget;
    const s3 = new AwsClient({ accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey, service: "s3", region: target.region ?? "auto", retries: 0 }); // our retries, not its own 10 more per try
    const keys: string[] = [];
    for (const event of events) {
      const key = sentinelKey({ team_id: target.teamId, session_id: event.session_id, topic_id: event.topic_id ?? null, event_id: event.id });
      const body = JSON.stringify(event);
      const headers: Record<string, string> = { "Content-Type": "application/json" };
      if (this.options.signingSecret) {
        const id = `msg_${crypto.randomUUID()}`;
        const ts = Math.floor(Date.now() / 1000);
        Object.assign(headers, { "x-amz-meta-webhook-id": id, "x-amz-meta-webhook-timestamp": String(ts), "x-amz-meta-webhook-signature": await signPayload(this.options.signingSecret, id, ts, body) });
      }
      const url = `${target.endpoint.replace(/\/$/, "")}/${target.bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
      try {
        await this.withRetries("sentinel PUT", 3, undefined, () => this.request(url, { method: "PUT", headers, body }, undefined, undefined, s3.fetch.bind(s3) as typeof fetch), 200);
      } catch (error) {
        throw sentinelStoreError(error, callbacks);
      }
      keys.push(key);
    }
    return keys;
  }

  /** A topic's per-step records, as GET /v1/sessions/:sid/topics/:tid gives them (an agent key may read it). */
  async getTopic(sessionId: string, topicId: string, call: CallOptions = {}): Promise<TopicSteps> {
    const url = new URL(`/v1/sessions/${encodeURIComponent(sessionId)}/topics/${encodeURIComponent(topicId)}`, this.options.baseUrl);
    const init = { headers: { Authorization: `Bearer ${this.options.apiKey}`, Accept: "application/json" } };
    return JSON.parse(await this.withRetries("topic read", call.retries ?? this.options.retries ?? 3, call.signal, () => this.request(url, init, undefined, call.timeoutMs, undefined, call.signal))) as TopicSteps;
  }

  /** Stores a workspace file (the runner's chat logs). */
  async putWorkspaceFile(sessionId: string, topicId: string, path: string, body: string | Uint8Array<ArrayBuffer>, contentType = "text/plain; charset=utf-8", call: CallOptions = {}): Promise<void> {
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    const url = this.workspaceUrl(sessionId, topicId, path);
    const init = { method: "PUT", headers: { Authorization: `Bearer ${this.options.apiKey}`, "Content-Type": contentType, "Content-Length": String(bytes.byteLength) }, body: bytes };
    // A long log needs time to send: the limit grows by 1 ms a KB (1 MB/s).
    const timeoutMs = (call.timeoutMs ?? this.options.timeoutMs ?? 10_000) + Math.ceil(bytes.byteLength / 1000);
    await this.withRetries("workspace upload", call.retries ?? this.options.retries ?? 3, call.signal, () => this.request(url, init, undefined, timeoutMs, undefined, call.signal));
  }

  /** Removes a workspace file; one already gone is not an error. */
  async deleteWorkspaceFile(sessionId: string, topicId: string, path: string, call: CallOptions = {}): Promise<void> {
    const init = { method: "DELETE", headers: { Authorization: `Bearer ${this.options.apiKey}` } };
    try {
      await this.withRetries("workspace delete", call.retries ?? this.options.retries ?? 3, call.signal, () => this.request(this.workspaceUrl(sessionId, topicId, path), init, undefined, call.timeoutMs, undefined, call.signal));
    } catch (error) {
      if (!(error instanceof HttpError && error.status === 404)) throw error;
    }
  }

  /** The paths of a topic's workspace files under `prefix` (the first 1,000). */
  async listWorkspace(sessionId: string, topicId: string, prefix: string, call: CallOptions = {}): Promise<string[]> {
    const url = this.workspaceUrl(sessionId, topicId, "");
    url.search = new URLSearchParams({ prefix, limit: "1000" }).toString();
    const init = { headers: { Authorization: `Bearer ${this.options.apiKey}`, Accept: "application/json" } };
    const text = await this.withRetries("workspace list", call.retries ?? this.options.retries ?? 3, call.signal, () => this.request(url, init, undefined, call.timeoutMs, undefined, call.signal));
    return (JSON.parse(text) as { items: { path: string }[] }).items.map((i) => i.path);
  }

  private workspaceUrl(sessionId: string, topicId: string, path: string): URL {
    const base = `/v1/sessions/${encodeURIComponent(sessionId)}/topics/${encodeURIComponent(topicId)}/workspace`;
    return new URL(path ? `${base}/${path.split("/").map(encodeURIComponent).join("/")}` : base, this.options.baseUrl);
  }
}

/**
 * The list cut into request bodies, each with the index of its first event: a batch closes at
 * 100 events, or before the event that would take its body past the API's 1 MiB (counted in
 * UTF-8 bytes, as the server counts it; a batch of many large events would otherwise be 413,
 * a refusal, and none of them delivered). An event that is over the limit on its own could
 * never be sent, not even as a sentinel (the sweep checks the same limit): it is refused
 * here, before any of the list is sent, as an event the schema refuses is.
 */
function batches(list: AgentEvent[]): [number, AgentEvent[]][] {
  const out: [number, AgentEvent[]][] = [];
  let current: AgentEvent[] = [];
  let bytes = ENVELOPE_BYTES;
  list.forEach((event, i) => {
    const size = Buffer.byteLength(JSON.stringify(event));
    if (size > BODY_LIMIT_BYTES) throw new Error(`event ${event.id} is ${size} bytes as JSON, over the API's ${BODY_LIMIT_BYTES}-byte (1 MiB) limit on a request body; nothing was sent`);
    if (current.length > 0 && (current.length === BATCH_EVENTS || bytes + size + 1 > BODY_LIMIT_BYTES)) {
      out.push([i - current.length, current]);
      current = [];
      bytes = ENVELOPE_BYTES;
    }
    current.push(event);
    bytes += size + 1; // and its comma
  });
  out.push([list.length - current.length, current]);
  return out;
}

export function retryAfterMs(value: string | null): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/** Waits `ms`, or less when `signal` aborts (the caller then sees it aborted). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Options from the environment, as agents and shell scripts set them. */
export function clientOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ClientOptions {
  const baseUrl = env.SWITCHBOARD_URL || "http://127.0.0.1:8787";
  // Bad usage before anything is sent: an unusable URL is not an outage to retry and hide in sentinels.
  checkUrl(baseUrl, "SWITCHBOARD_URL");
  const apiKey = env.SWITCHBOARD_API_KEY;
  if (!apiKey) throw new Error("SWITCHBOARD_API_KEY is not set");
  const s = env.SWITCHBOARD_SENTINEL_ENDPOINT;
  if (s) checkUrl(s, "SWITCHBOARD_SENTINEL_ENDPOINT");
  const sentinel =
    s && env.SWITCHBOARD_SENTINEL_BUCKET && env.SWITCHBOARD_SENTINEL_ACCESS_KEY_ID && env.SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY && env.SWITCHBOARD_TEAM_ID
      ? { endpoint: s, bucket: env.SWITCHBOARD_SENTINEL_BUCKET, accessKeyId: env.SWITCHBOARD_SENTINEL_ACCESS_KEY_ID, secretAccessKey: env.SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY, teamId: env.SWITCHBOARD_TEAM_ID, region: env.SWITCHBOARD_SENTINEL_REGION }
      : undefined;
  return {
    baseUrl,
    apiKey,
    signingSecret: signingSecretFrom(env),
    sentinel,
    retries: wholeNumber(env, "SWITCHBOARD_RETRIES", 0, 100),
    timeoutMs: wholeNumber(env, "SWITCHBOARD_TIMEOUT_MS", 1, 3_600_000),
  };
}

/** A secret that cannot sign would fail every try alike: bad usage (exit 2), not a reason to retry. */
function signingSecretFrom(env: NodeJS.ProcessEnv): string | undefined {
  const secret = env.SWITCHBOARD_SIGNING_SECRET;
  if (secret === undefined || secret === "") return undefined;
  if (secretKeyBytes(secret) === null) throw new UsageError("SWITCHBOARD_SIGNING_SECRET is not a usable Standard Webhooks secret", "it is whsec_ followed by the base64 of 24 to 64 random bytes: the team's signing_secret as PATCH /v1/team was given it");
  return secret;
}

/** A setting that is not a number is a mistake to report (exit 2), not a reason to fall back quietly. */
function wholeNumber(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const value = env[name];
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError(`${name} must be a whole number from ${min} to ${max} (not ${value})`);
  return n;
}
