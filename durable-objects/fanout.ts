import { concat, sseComment } from "../src/lib/sse";

/**
 * A stream this many bytes behind is too slow and is dropped, never waited on: it reconnects
 * with Last-Event-ID and is replayed from the hub's log. Bytes, not chunks, because the pacing
 * below makes a chunk carry 5 ms of events at one stream and a second's at 1,000.
 * Under wrangler dev, socket and proxy buffers hold several MB more in front of the hub: a
 * client that stopped reading while 60 MB were posted got ~12 MB, then the end of its stream
 * (test/node/slow-reader.test.ts). With the earlier TransformStream hubs, writes kept
 * completing for 25–40 MB, and a chunk-count limit never triggered.
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
  controller: ReadableStreamDefaultController<Uint8Array>;
}

/** An open stream, as `open` returns it: to drop it from the hub's side. */
export type StreamHandle = Subscriber;

/**
 * The SSE streams of one hub: paced writes, heartbeats, and slow readers dropped. A stream is
 * a JS ReadableStream the hub enqueues into (never awaited, so one stalled reader never holds
 * up the others or the hub). Measured against a TransformStream written through its writer,
 * quick bench runs side by side (BENCH_SYSTEMS=switchboard BENCH_PARTS=events BENCH_RESTART=0
 * BENCH_SUBSCRIBERS=100 or 1000 BENCH_LATENCY_S=10, 200 events/s; 3 pairs): through wrangler's
 * proxy, applied → delivered p99 at 100 streams 155–189 ms against 263–343 ms, and delivery
 * p50 at 1,000 streams 1.6 s against 2.4 s (one pair); straight to the runtime, within the
 * spread. workerd's IdentityTransformStream was dropped earlier: a test client's cancel of
 * it sometimes never settled on a loaded machine.
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
   * Opens a stream that starts with `first`, for a Response body. Events still waiting for the next
   * flush go to the other streams now: the caller read the new stream's replay or snapshot
   * after they were applied, so it neither misses nor repeats them.
   */
  open(first: Uint8Array): { readable: ReadableStream<Uint8Array>; handle: StreamHandle } {
    this.flush();
    let sub!: Subscriber;
    // The queue counts bytes, so desiredSize is minus what the reader is behind by.
    const readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => void (sub = { controller }),
        cancel: () => void this.forget(sub),
      },
      { highWaterMark: 0, size: (chunk) => chunk.byteLength },
    );
    this.send(sub, first);
    this.subscribers.add(sub);
    this.startHeartbeat();
    return { readable, handle: sub };
  }

  /** The client went away (or was too slow): forget its stream. */
  drop(sub: StreamHandle): void {
    if (!this.forget(sub)) return;
    try {
      sub.controller.error(new Error("dropped"));
    } catch {
      // already closed or errored
    }
  }

  private forget(sub: Subscriber): boolean {
    if (!this.subscribers.delete(sub)) return false;
    if (this.subscribers.size === 0) this.stopHeartbeat();
    return true;
  }

  /** Ends every stream cleanly; resolves once each has taken its last chunk, or after `waitMs`. */
  async closeAll(waitMs: number): Promise<void> {
    const closing = [...this.subscribers];
    this.subscribers.clear();
    this.stopHeartbeat();
    for (const sub of closing) sub.controller.close();
    // Closed streams still hold what their readers have not taken: wait for it, a while.
    const until = Date.now() + waitMs;
    while (Date.now() < until && closing.some((sub) => (sub.controller.desiredSize ?? 0) < 0)) await new Promise((r) => setTimeout(r, 5));
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
    const desired = sub.controller.desiredSize;
    if (desired === null || -desired > MAX_UNSENT_BYTES) {
      this.drop(sub);
      return;
    }
    sub.controller.enqueue(chunk);
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
