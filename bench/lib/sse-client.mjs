// A minimal Server-Sent Events client over node:http: the parser follows the WHATWG event
// stream format (fields event/data/id/retry, ':' comments, a blank line dispatches; lines
// end in LF or CRLF). Each event is stamped with the arrival time of the chunk that
// completed it, taken before parsing, so parsing cost does not inflate measured latency.
import http from "node:http";

/**
 * Incremental parser: feed(text, at) calls onEvent({ id, event, data }, at) per event, and
 * onRetry(ms) for a `retry:` field.
 */
export class SseParser {
  constructor(onEvent, onRetry = () => {}) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.event = "";
    this.data = null;
    this.id = null;
  }

  feed(text, at) {
    this.buffer += text;
    let start = 0;
    for (let nl = this.buffer.indexOf("\n", start); nl !== -1; nl = this.buffer.indexOf("\n", start)) {
      let line = this.buffer.slice(start, nl);
      start = nl + 1;
      if (line.endsWith("\r")) line = line.slice(0, -1);
      this.line(line, at);
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line, at) {
    if (line === "") {
      if (this.data !== null) this.onEvent({ id: this.id, event: this.event || "message", data: this.data }, at);
      this.reset();
      return;
    }
    if (line.startsWith(":")) return; // comment (heartbeat)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data = this.data === null ? value : `${this.data}\n${value}`;
    else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.onRetry(Number(value));
    // Unknown fields are ignored.
  }
}

/** Epoch milliseconds with sub-millisecond resolution, comparable across worker threads. */
export const nowMs = () => performance.timeOrigin + performance.now();

/**
 * Opens one stream. Calls onOpen(status) once headers arrive, onEvent(event, at) per event,
 * onRetry(ms) per `retry:` field, onEnd(reason) once when the stream ends or fails.
 * Returns { close() }.
 */
export function openSse(url, { headers = {}, agent, onOpen, onEvent, onRetry, onEnd, connectTimeoutMs = 60_000 }) {
  const u = new URL(url);
  if (u.hostname !== "127.0.0.1") throw new Error(`bench streams go to 127.0.0.1 only, not ${u.hostname}`);
  let ended = false;
  const end = (reason) => {
    if (ended) return;
    ended = true;
    onEnd?.(reason);
  };
  const parser = new SseParser(onEvent, onRetry);
  const req = http.get(u, { headers: { Accept: "text/event-stream", ...headers }, agent }, (res) => {
    clearTimeout(timer);
    onOpen?.(res.statusCode);
    if (res.statusCode !== 200) {
      res.resume();
      end(`status ${res.statusCode}`);
      return;
    }
    res.setEncoding("utf8");
    res.on("data", (text) => parser.feed(text, nowMs()));
    res.on("end", () => end("server closed the stream"));
    res.on("error", (e) => end(`response error: ${e.message}`));
    res.on("close", () => end("connection closed"));
  });
  const timer = setTimeout(() => req.destroy(new Error(`no response headers within ${connectTimeoutMs} ms`)), connectTimeoutMs);
  req.on("error", (e) => {
    clearTimeout(timer);
    end(`request error: ${e.message}`);
  });
  return {
    close() {
      clearTimeout(timer);
      ended = true;
      req.destroy();
    },
  };
}

/**
 * A stream that comes back, as a browser's EventSource does: when it ends or fails, it waits
 * the last `retry:` the server sent (defaultRetryMs before any) and reopens with the
 * Last-Event-ID of the last event that had an id. Unlike EventSource it also retries after
 * an error status (a restarting server may answer 502/503 for a moment) and never gives up
 * until close(). Callbacks: onOpen(status, attempt, lastEventId: the Last-Event-ID this
 * connection sent, null for none), onEvent(event, at), onDown(reason,
 * at) each time a connection ends; onEnd(reason) once, at close(). Returns { close() }.
 */
export function openReconnectingSse(url, { headers = {}, agent, onOpen, onEvent, onDown, onEnd, connectTimeoutMs = 60_000, defaultRetryMs = 2000 }) {
  let retryMs = defaultRetryMs;
  let lastId = null;
  let closed = false;
  let current = null;
  let timer = null;
  let attempt = 0;
  const connect = () => {
    timer = null;
    const sent = lastId;
    const h = sent === null ? headers : { ...headers, "Last-Event-ID": sent };
    const n = attempt++;
    current = openSse(url, {
      headers: h,
      agent,
      connectTimeoutMs,
      onOpen: (status) => onOpen?.(status, n, sent),
      onRetry: (ms) => (retryMs = ms),
      onEvent: (ev, at) => {
        if (ev.id !== null) lastId = ev.id;
        onEvent(ev, at);
      },
      onEnd: (reason) => {
        if (closed) return;
        onDown?.(reason, nowMs());
        timer = setTimeout(connect, retryMs);
      },
    });
  };
  connect();
  return {
    close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      current?.close();
      onEnd?.("closed by the client");
    },
  };
}
