import { concat, sseComment } from "../src/lib/sse";

/**
 * A stream this many bytes behind is too slow and is dropped, never waited on: it reconnects
 * with Last-Event-ID and is replayed from the hub's log. Bytes, not chunks, because the pacing
 * below makes a chunk carry 5 ms of events at one stream and a second's at 1,000.
 * (Under wrangler dev it rarely comes to that: a client that stopped reading took 25–40 MB
 * before the hub's writes stopped completing, buffered in front of the DO. Measured by hand.)
 */
export const MAX_UNSENT_BYTES = 4 * 1024 * 1024;
/**
 * Pacing (see `enqueue`): 100 streams are flushed every 100 ms, 1,000 every second.
 * Each write costs about the same whatever it carries (under wrangler dev it crosses the DO,
 * the Worker and wrangler's proxy). Measured at 200 events/s to 100 streams on the 2-core
 * machine (single 10–15 s runs): 10,000 writes/s saturated it (p99 3.9 s), 2,000 gave p99
 * 418 ms, 1,000 gave 308 ms.
 */
const MIN_FLUSH_MS = 5;
const WRITES_PER_SECOND = 1_000;

interface Subscriber {
  writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Bytes written to the stream whose write has not completed: what the reader is behind by. */
  unsent: number;
}

/** An open stream, as `add` returns it: to close it from the hub's side. */
export type StreamHandle = Subscriber;

/**
 * The SSE streams of one hub: paced writes, heartbeats, and slow readers dropped. Writes are
 * never awaited, so one stalled reader never holds up the others or the hub.
 */
export class Fanout {
  private subscribers = new Set<Subscriber>();
  private pending: Uint8Array[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private lastFlush = 0;
  private heartbeat: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly heartbeatMs: number) {}

  get size(): number {
    return this.subscribers.size;
  }

  /**
   * Opens a stream on `writable` that starts with `first`. Events still waiting for the next
   * flush go to the other streams now: the caller read the new stream's replay or snapshot
   * after they were applied, so it neither misses nor repeats them.
   */
  add(writable: WritableStream<Uint8Array>, first: Uint8Array): StreamHandle {
    this.flush();
    const sub: Subscriber = { writer: writable.getWriter(), unsent: 0 };
    this.send(sub, first);
    this.subscribers.add(sub);
    this.startHeartbeat();
    return sub;
  }

  /** The client went away (or was too slow): forget its stream. */
  drop(sub: StreamHandle): void {
    if (!this.subscribers.delete(sub)) return;
    sub.writer.abort().catch(() => {});
    if (this.subscribers.size === 0) this.stopHeartbeat();
  }

  /** Ends every stream cleanly; resolves once each has taken its last chunk, or after `waitMs`. */
  async closeAll(waitMs: number): Promise<void> {
    const closing = [...this.subscribers].map((sub) => sub.writer.close().catch(() => {}));
    this.subscribers.clear();
    this.stopHeartbeat();
    await Promise.race([Promise.all(closing), new Promise((r) => setTimeout(r, waitMs))]);
  }

  /**
   * Queues an event for every stream. An idle stream gets it at once; under load, events
   * are gathered and written together, at most one write per stream every `flushInterval()`
   * ms. Each write costs the same in the DO, the Worker and the proxy whatever its size, so
   * this keeps the writes per second bounded while the events per second grow.
   */
  enqueue(chunk: Uint8Array): void {
    this.pending.push(chunk);
    if (this.flushTimer) return;
    const wait = Math.max(0, this.lastFlush + this.flushInterval() - Date.now());
    this.flushTimer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.pending.length === 0) return;
    this.lastFlush = Date.now();
    const chunk = concat(this.pending);
    this.pending = [];
    this.broadcast(chunk);
  }

  /** 5 ms, or longer with many streams: at most about WRITES_PER_SECOND writes a second in all. */
  private flushInterval(): number {
    return Math.max(MIN_FLUSH_MS, (1000 * this.subscribers.size) / WRITES_PER_SECOND);
  }

  private broadcast(chunk: Uint8Array): void {
    for (const sub of this.subscribers) this.send(sub, chunk);
  }

  private send(sub: Subscriber, chunk: Uint8Array): void {
    if (sub.unsent > MAX_UNSENT_BYTES) {
      this.drop(sub);
      return;
    }
    sub.unsent += chunk.byteLength;
    sub.writer.write(chunk).then(
      () => (sub.unsent -= chunk.byteLength),
      () => this.drop(sub),
    );
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => this.broadcast(sseComment("heartbeat")), this.heartbeatMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }
}
