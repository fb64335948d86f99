// A minimal Server-Sent Events client over node:http: the parser follows the WHATWG event
// stream format (fields event/data/id/retry, ':' comments, a blank line dispatches; lines
// end in LF or CRLF). Each event is stamped with the arrival time of the chunk that
// completed it, taken before parsing, so parsing cost does not inflate measured latency.
import http from "node:http";

/** Incremental parser: feed(text, at) calls onEvent({ id, event, data }, at) per event. */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
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
    // "retry" and unknown fields are ignored: this client does not reconnect.
  }
}

/** Epoch milliseconds with sub-millisecond resolution, comparable across worker threads. */
export const nowMs = () => performance.timeOrigin + performance.now();

/**
 * Opens one stream. Calls onOpen(status) once headers arrive, onEvent(event, at) per event,
 * onEnd(reason) once when the stream ends or fails. Returns { close() }.
 */
export function openSse(url, { headers = {}, agent, onOpen, onEvent, onEnd, connectTimeoutMs = 60_000 }) {
  const u = new URL(url);
  if (u.hostname !== "127.0.0.1") throw new Error(`bench streams go to 127.0.0.1 only, not ${u.hostname}`);
  let ended = false;
  const end = (reason) => {
    if (ended) return;
    ended = true;
    onEnd?.(reason);
  };
  const parser = new SseParser(onEvent);
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
