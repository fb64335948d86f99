import { createParser, type EventSourceMessage } from "eventsource-parser";
import { ApiFailure } from "./api";
import { sleep } from "./context";

/** Waits before the first reconnect until the server's `retry:` says otherwise (the Worker sends 2 s). */
const DEFAULT_RETRY_MS = 1000;
/** The longest wait between two tries, however many have failed. */
export const MAX_BACKOFF_MS = 10_000;
/**
 * The Worker sends a heartbeat comment every 15 s (HEARTBEAT_MS): a stream silent for three
 * of them is taken as dead (a laptop that slept, a proxy that dropped the connection
 * without a FIN) and opened again.
 */
export const SILENCE_MS = 45_000;
/** One event's data may not grow past this (a team event is a few KiB): guards the buffer against a stream that is not SSE. */
const MAX_BUFFER_CHARS = 1 << 20;
/** Answers that mean "this server has no such stream" (an older Worker), not "try again". */
const UNSUPPORTED = new Set([404, 405, 501]);

export interface StreamDrop {
  /** Why the stream ended or could not be opened. */
  error: string;
  /** Tries since the stream was last open (1 for the first reconnect). */
  attempt: number;
  retryInMs: number;
}

export interface StreamHandlers {
  /** The stream is open (first or again); events follow. */
  onOpen(): void;
  onEvent(message: EventSourceMessage): void;
  onDrop(drop: StreamDrop): void;
}

export type StreamEnd = { kind: "stopped" } | { kind: "unsupported"; reason: string };

export interface FollowOptions {
  maxBackoffMs?: number;
  silenceMs?: number;
}

/**
 * Follows a Server-Sent Events stream until `signal` aborts: parses it with
 * eventsource-parser, and when it drops, opens it again with `Last-Event-ID` after the
 * server's `retry` delay, doubling after each failed try up to `maxBackoffMs`. Resolves
 * `unsupported` when the server has no such stream (404, 405, 501, or an answer that is not
 * text/event-stream), so the caller can fall back; rejects with the ApiFailure of a 401 or
 * 403, which no wait will cure.
 *
 * `open` makes the request (`Api.openStream`): it rejects with an ApiFailure for a refusal.
 */
export async function followEventStream(
  open: (lastEventId: string | null, signal: AbortSignal) => Promise<Response>,
  handlers: StreamHandlers,
  signal: AbortSignal,
  options: FollowOptions = {},
): Promise<StreamEnd> {
  const maxBackoffMs = options.maxBackoffMs ?? MAX_BACKOFF_MS;
  const silenceMs = options.silenceMs ?? SILENCE_MS;
  let lastEventId: string | null = null;
  let retryMs = DEFAULT_RETRY_MS;
  let failures = 0;
  const parser = createParser({
    onEvent(message) {
      // An event without an id keeps the last one (the SSE rule); the server numbers every event but `reset`.
      if (message.id !== undefined) lastEventId = message.id;
      handlers.onEvent(message);
    },
    onRetry(ms) {
      retryMs = ms;
    },
    maxBufferSize: MAX_BUFFER_CHARS,
  });

  while (!signal.aborted) {
    const attempt = new AbortController();
    const both = AbortSignal.any([signal, attempt.signal]);
    let error: string;
    let opened = false;
    try {
      const res = await open(lastEventId, both);
      const type = res.headers.get("Content-Type") ?? "";
      if (!type.toLowerCase().startsWith("text/event-stream")) {
        await res.body?.cancel().catch(() => {});
        return { kind: "unsupported", reason: `${res.url || "the server"} answered ${res.status} with ${type || "no Content-Type"}, not text/event-stream` };
      }
      failures = 0;
      parser.reset();
      opened = true;
      handlers.onOpen();
      await readInto(res, (chunk) => parser.feed(chunk), attempt, silenceMs);
      error = "the stream ended";
    } catch (e) {
      if (signal.aborted) break;
      if (e instanceof ApiFailure && (e.status === 401 || e.status === 403)) throw e;
      if (e instanceof ApiFailure && UNSUPPORTED.has(e.status)) return { kind: "unsupported", reason: e.message };
      // A cut connection is undici's bare "terminated"; its cause, if any, has the code.
      const code = e instanceof Error && e.cause instanceof Error ? (e.cause as NodeJS.ErrnoException).code : undefined;
      error = opened ? `the connection was lost${code ? ` (${code})` : ""}` : e instanceof Error ? e.message : String(e);
    }
    if (attempt.signal.aborted) error = `nothing received for ${silenceMs / 1000} s`;
    if (signal.aborted) break;
    failures += 1;
    const retryInMs = Math.min(maxBackoffMs, retryMs * 2 ** (failures - 1));
    handlers.onDrop({ error, attempt: failures, retryInMs });
    await sleep(retryInMs, signal);
  }
  return { kind: "stopped" };
}

/** Feeds the body to the parser until it ends; silence longer than `silenceMs` aborts `attempt`. */
async function readInto(res: Response, feed: (chunk: string) => void, attempt: AbortController, silenceMs: number): Promise<void> {
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => attempt.abort(), silenceMs);
  };
  const cancel = () => void reader.cancel().catch(() => {});
  attempt.signal.addEventListener("abort", cancel, { once: true });
  try {
    watch();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      watch();
      feed(value);
    }
  } finally {
    clearTimeout(timer);
    attempt.signal.removeEventListener("abort", cancel);
  }
}
