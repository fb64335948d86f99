import { AwsClient } from "aws4fetch";
import pRetry, { AbortError } from "p-retry";
import { type AgentEvent, eventSchema } from "../src/domain/events";
import { sentinelKey } from "../src/domain/sentinel";
import { signPayload } from "../src/lib/standard-webhooks";

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
  /** Retries after the first try (default 5), with exponential backoff and full jitter. */
  retries?: number;
  minDelayMs?: number;
  maxDelayMs?: number;
  fetch?: typeof fetch;
  log?: (line: string) => void;
}

/** The part of a topic the runner reads (the full shape is `topicSchema` in src/routes/schemas.ts). */
export interface TopicSteps {
  steps: Partial<Record<string, { status: string; max_turns: number }>>;
}

export type SendResult = { delivered: "callback"; accepted: number } | { delivered: "sentinel"; keys: string[]; error: string };

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly retryAfterMs: number | null,
  ) {
    super(`HTTP ${status}: ${body.slice(0, 500)}`);
  }
}

/** Statuses worth retrying: the platform was busy or failed, not the request. */
const RETRYABLE = new Set([408, 425, 429, 500, 502, 503, 504]);

/**
 * The agents' client: validates events with the server's own schemas, sends them singly or
 * in batches of up to 100, signs them when given a secret, retries with backoff (honouring
 * Retry-After), and when every retry failed writes each event as a sentinel for the sweep.
 */
export class SwitchboardClient {
  private readonly fetch: typeof fetch;
  constructor(private readonly options: ClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  async send(events: AgentEvent | AgentEvent[]): Promise<SendResult> {
    const list = (Array.isArray(events) ? events : [events]).map((e) => ({ ...e, occurred_at: e.occurred_at ?? new Date().toISOString() }));
    for (const event of list) eventSchema.parse(event);
    if (list.length === 0) return { delivered: "callback", accepted: 0 };
    let accepted = 0;
    for (let i = 0; i < list.length; i += 100) {
      const chunk = list.slice(i, i + 100);
      try {
        accepted += await this.post(chunk);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // A refusal (400, 401, 404 …) is final: a sentinel would be refused by the sweep too.
        if (error instanceof HttpError && !RETRYABLE.has(error.status)) throw error;
        if (!this.options.sentinel) throw error;
        const keys = await this.writeSentinels(list.slice(i));
        this.options.log?.(`callbacks unreachable (${message}); wrote ${keys.length} sentinel(s)`);
        return { delivered: "sentinel", keys, error: message };
      }
    }
    return { delivered: "callback", accepted };
  }

  private async post(events: AgentEvent[]): Promise<number> {
    const body = JSON.stringify(events.length === 1 ? events[0] : { events });
    return pRetry(
      async () => {
        const headers: Record<string, string> = { "Content-Type": "application/json", Authorization: `Bearer ${this.options.apiKey}` };
        if (this.options.signingSecret) {
          // A fresh webhook-id per try: the server refuses an id it has seen (replay).
          const id = `msg_${crypto.randomUUID()}`;
          const ts = Math.floor(Date.now() / 1000);
          Object.assign(headers, { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": await signPayload(this.options.signingSecret, id, ts, body) });
        }
        const res = await this.fetch(new URL("/v1/callbacks", this.options.baseUrl), { method: "POST", headers, body });
        const text = await res.text();
        if (res.status === 202) return (JSON.parse(text) as { accepted: number }).accepted;
        const error = new HttpError(res.status, text, retryAfterMs(res.headers.get("Retry-After")));
        if (!RETRYABLE.has(res.status)) throw new AbortError(error);
        throw error;
      },
      {
        retries: this.options.retries ?? 5,
        minTimeout: this.options.minDelayMs ?? 500,
        maxTimeout: this.options.maxDelayMs ?? 30_000,
        factor: 2,
        randomize: true,
        onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
          this.options.log?.(`callback attempt ${attemptNumber} failed: ${error.message}${retriesLeft > 0 ? "; retrying" : ""}`);
          // Honour Retry-After on top of the backoff: the server knows when it will take more.
          if (error instanceof HttpError && error.retryAfterMs !== null && retriesLeft > 0) await sleep(Math.min(error.retryAfterMs, this.options.maxDelayMs ?? 30_000));
        },
      },
    ).catch((error: unknown) => {
      throw error instanceof AbortError ? error.originalError : error;
    });
  }

  /** Writes each event to `callback-sentinels/alpha/{team}/{session}/{topic|-}/{event}.json`, signed like a callback. */
  private async writeSentinels(events: AgentEvent[]): Promise<string[]> {
    const target = this.options.sentinel as SentinelTarget;
    const s3 = new AwsClient({ accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey, service: "s3", region: target.region ?? "auto" });
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
      const res = await pRetry(async () => {
        const r = await s3.fetch(url, { method: "PUT", headers, body });
        if (!r.ok) throw new Error(`sentinel PUT ${r.status}: ${(await r.text()).slice(0, 300)}`);
        await r.body?.cancel();
        return r;
      }, { retries: 3, minTimeout: 200 });
      if (res.ok) keys.push(key);
    }
    return keys;
  }

  /** A topic's per-step records, as GET /v1/sessions/:sid/topics/:tid gives them (an agent key may read it). */
  async getTopic(sessionId: string, topicId: string): Promise<TopicSteps> {
    const url = new URL(`/v1/sessions/${encodeURIComponent(sessionId)}/topics/${encodeURIComponent(topicId)}`, this.options.baseUrl);
    return pRetry(
      async () => {
        const res = await this.fetch(url, { headers: { Authorization: `Bearer ${this.options.apiKey}`, Accept: "application/json" } });
        const text = await res.text();
        if (res.ok) return JSON.parse(text) as TopicSteps;
        const error = new HttpError(res.status, text, retryAfterMs(res.headers.get("Retry-After")));
        throw RETRYABLE.has(res.status) ? error : new AbortError(error);
      },
      { retries: this.options.retries ?? 3, minTimeout: this.options.minDelayMs ?? 500 },
    );
  }

  /** Stores a workspace file (the runner's chat logs). */
  async putWorkspaceFile(sessionId: string, topicId: string, path: string, body: string | Uint8Array<ArrayBuffer>, contentType = "text/plain; charset=utf-8"): Promise<void> {
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    const url = new URL(`/v1/sessions/${encodeURIComponent(sessionId)}/topics/${encodeURIComponent(topicId)}/workspace/${path.split("/").map(encodeURIComponent).join("/")}`, this.options.baseUrl);
    await pRetry(
      async () => {
        const res = await this.fetch(url, { method: "PUT", headers: { Authorization: `Bearer ${this.options.apiKey}`, "Content-Type": contentType, "Content-Length": String(bytes.byteLength) }, body: bytes });
        const text = await res.text();
        if (!res.ok) {
          const error = new HttpError(res.status, text, retryAfterMs(res.headers.get("Retry-After")));
          throw RETRYABLE.has(res.status) ? error : new AbortError(error);
        }
      },
      { retries: this.options.retries ?? 3, minTimeout: this.options.minDelayMs ?? 500 },
    );
  }
}

export function retryAfterMs(value: string | null): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Options from the environment, as agents and shell scripts set them. */
export function clientOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ClientOptions {
  const baseUrl = env.SWITCHBOARD_URL ?? "http://127.0.0.1:8787";
  const apiKey = env.SWITCHBOARD_API_KEY;
  if (!apiKey) throw new Error("SWITCHBOARD_API_KEY is not set");
  const s = env.SWITCHBOARD_SENTINEL_ENDPOINT;
  const sentinel =
    s && env.SWITCHBOARD_SENTINEL_BUCKET && env.SWITCHBOARD_SENTINEL_ACCESS_KEY_ID && env.SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY && env.SWITCHBOARD_TEAM_ID
      ? { endpoint: s, bucket: env.SWITCHBOARD_SENTINEL_BUCKET, accessKeyId: env.SWITCHBOARD_SENTINEL_ACCESS_KEY_ID, secretAccessKey: env.SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY, teamId: env.SWITCHBOARD_TEAM_ID, region: env.SWITCHBOARD_SENTINEL_REGION }
      : undefined;
  return { baseUrl, apiKey, signingSecret: env.SWITCHBOARD_SIGNING_SECRET, sentinel, retries: env.SWITCHBOARD_RETRIES ? Number(env.SWITCHBOARD_RETRIES) : undefined };
}
