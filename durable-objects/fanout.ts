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
 * Pacing (see `Fanout`): under load, each of 100 streams gets one write every 100 ms, each of
 * 1,000 one a second. Each write costs about the same whatever it carries (under wrangler dev
 * it crosses the DO, the Worker and wrangler's proxy). Measured at 200 events/s to 100
 * streams on the 2-core machine (single 10–15 s runs, before the writes were spread):
 * 10,000 writes/s saturated it (p99 3.9 s), 2,000 gave p99 418 ms, 1,000 gave 308 ms; later
 * quick runs put 2,000 ahead straight to the runtime and behind through the proxy.
 */
const TICK_MS = 5;
export const WRITES_PER_SECOND = 1_000;
/** Streams written together in one tick: WRITES_PER_SECOND spread over the ticks of a second. */
const GROUP_SIZE = (WRITES_PER_SECOND * TICK_MS) / 1000;

/**
 * Where a resumed stream's missed events come from: the hub's log, read a page at a time,
 * each only when the stream's reader asks for more (so a replay of 1,000 events of 1 MB is
 * never held in memory at once, and a reader that stops reading stops the reading).
 */
export interface ReplaySource {
  /**
   * The events after `after`: one page of them encoded (null: none), the sequence number of
   * its last, and whether that is the hub's current one. "gap": some of the events after
   * `after` are no longer kept (trimmed while the reader lagged), so the stream cannot go on.
   */
  next(after: number): { chunk: Uint8Array | null; last: number; caughtUp: boolean } | "gap";
}

interface Subscriber {
  controller: ReadableStreamDefaultController<Uint8Array>;
  /** Null while replaying: a stream joins a group, and the live events, once it caught up. */
  group: Group | null;
  replay: { after: number; source: ReplaySource } | null;
}

/** Streams written together, and the events they have not been sent yet. */
interface Group {
  members: Set<Subscriber>;
  pending: Uint8Array[];
}

/** An open stream, as `open` returns it: to drop it from the hub's side. */
export type StreamHandle = Subscriber;

/**
 * The SSE streams of one hub: paced writes, heartbeats, and slow readers dropped. A stream is
 * a JS ReadableStream the hub enqueues into (never awaited, so one stalled reader never holds
 * up the others or the hub).
 *
 * Pacing: streams are kept in groups of GROUP_SIZE, and writes are paid for from a bucket
 * that refills at WRITES_PER_SECOND and holds one write per stream. An idle hub writes an
 * event to every stream at once; under load the bucket is empty and each tick writes the next
 * group due (round robin), so every stream gets all its waiting events in one write every
 * `streams / WRITES_PER_SECOND` s (100 ms at 100 streams) and the writes are spread evenly
 * over time instead of in bursts, which would hold up the requests that share the runtime's
 * and the proxy's one thread.
 *
 * Measured with quick bench runs side by side (BENCH_SYSTEMS=switchboard BENCH_PARTS=events
 * BENCH_RESTART=0 BENCH_SUBSCRIBERS=100 or 1000 BENCH_LATENCY_S=10, 200 events/s; the second
 * run of a pair tends to do better, so each change ran first): ReadableStreams against
 * TransformStreams written through a writer, through wrangler's proxy, applied → delivered
 * p99 at 100 streams 155–189 ms against 263–343 ms (3 pairs); spread writes against one
 * burst per interval, straight to the runtime, applied → delivered p50 55–57 ms against
 * 65–69 ms at 100 streams (3 pairs) and 510–550 ms against 750–810 ms at 1,000 (2 pairs),
 * through the proxy within the spread. workerd's IdentityTransformStream was dropped earlier:
 * a test client's cancel of it sometimes never settled on a loaded machine.
 */
export class Fanout {
  private groups: Group[] = [];
  /** Streams still being sent their replay: they get heartbeats, not live events. */
  private replaying = new Set<Subscriber>();
  /** The group the next tick writes first. */
  private turn = 0;
  private streams = 0;
  private tokens = 0;
  private refilledAt = Date.now();
  private ticker: ReturnType<typeof setTimeout> | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly heartbeatMs: number) {}

  get size(): number {
    return this.streams;
  }

  /** Bytes enqueued on the streams that their readers have not taken yet (for tests). */
  get unsentBytes(): number {
    let bytes = 0;
    const count = (sub: Subscriber) => void (bytes += Math.max(0, -(sub.controller.desiredSize ?? 0)));
    this.replaying.forEach(count);
    for (const group of this.groups) group.members.forEach(count);
    return bytes;
  }

  /**
   * Opens a stream that starts with `first`, for a Response body. Without `replay` it joins
   * the live events at once. With it, the events after `replay.after` follow, a page each
   * time the reader has taken the last (ReadableStream's pull), and the stream joins the
   * live events in the same call that found it caught up: with no await in between, no event
   * can be applied after the last page was read and before the stream is a member.
   */
  open(first: Uint8Array, replay?: { after: number; source: ReplaySource }): { readable: ReadableStream<Uint8Array>; handle: StreamHandle } {
    let sub!: Subscriber;
    // The queue counts bytes, so desiredSize is minus what the reader is behind by. With a
    // high-water mark of 0, pull runs only when the reader waits on an empty queue.
    const readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => void (sub = { controller, group: null, replay: replay ?? null }),
        pull: () => this.sendReplayPage(sub),
        cancel: () => void this.forget(sub),
      },
      { highWaterMark: 0, size: (chunk) => chunk.byteLength },
    );
    sub.controller.enqueue(first);
    this.streams += 1;
    if (sub.replay) this.replaying.add(sub);
    else this.join(sub);
    this.startHeartbeat();
    return { readable, handle: sub };
  }

  /**
   * Makes a stream a member of a group, to be sent live events. It has read the log (a
   * snapshot, or a replay) after the events waiting in that group were applied, so those go
   * to the group's other streams first: the new one neither misses nor repeats them.
   */
  private join(sub: Subscriber): void {
    let group = this.groups.find((g) => g.members.size < GROUP_SIZE);
    if (group) this.writeGroup(group);
    else this.groups.push((group = { members: new Set(), pending: [] }));
    group.members.add(sub);
    sub.group = group;
  }

  /** The reader wants more: the next page of its replay, and live events once caught up. */
  private sendReplayPage(sub: Subscriber): void {
    const replay = sub.replay;
    if (!replay || !this.replaying.has(sub)) return; // live (pull is moot) or gone
    let page: ReturnType<ReplaySource["next"]>;
    try {
      page = replay.source.next(replay.after);
    } catch {
      page = "gap"; // the log could not be read: the client resumes from where it got to
    }
    // Dropped as a slow reader is: it reconnects from its last id (past the log: a reset).
    if (page === "gap") return this.drop(sub);
    if (page.chunk) sub.controller.enqueue(page.chunk);
    replay.after = page.last;
    if (!page.caughtUp) return;
    this.replaying.delete(sub);
    sub.replay = null;
    this.join(sub);
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
    if (this.replaying.delete(sub)) {
      this.streams -= 1;
      if (this.streams === 0) this.stopHeartbeat();
      return true;
    }
    const group = sub.group;
    if (!group?.members.delete(sub)) return false;
    this.streams -= 1;
    if (group.members.size === 0) {
      const i = this.groups.indexOf(group);
      this.groups.splice(i, 1);
      if (this.turn > i) this.turn -= 1;
      if (this.turn >= this.groups.length) this.turn = 0;
    }
    if (this.streams === 0) this.stopHeartbeat();
    return true;
  }

  /** Ends every stream cleanly; resolves once each has taken its last chunk, or after `waitMs`. */
  async closeAll(waitMs: number): Promise<void> {
    const closing = [...this.replaying, ...this.groups.flatMap((g) => [...g.members])];
    this.replaying.clear();
    this.groups = [];
    this.turn = 0;
    this.streams = 0;
    this.stopHeartbeat();
    if (this.ticker) clearTimeout(this.ticker);
    this.ticker = null;
    for (const sub of closing) sub.controller.close();
    // Closed streams still hold what their readers have not taken: wait for it, a while.
    const until = Date.now() + waitMs;
    while (Date.now() < until && closing.some((sub) => (sub.controller.desiredSize ?? 0) < 0)) await new Promise((r) => setTimeout(r, 5));
  }

  /** Queues an event for every stream; it goes out on the next tick that can pay for it. */
  enqueue(chunk: Uint8Array): void {
    for (const group of this.groups) group.pending.push(chunk);
    this.schedule(0);
  }

  private schedule(wait: number): void {
    if (this.ticker || this.groups.length === 0) return;
    this.ticker = setTimeout(() => this.tick(), wait);
  }

  /** Writes the groups due, in turn, as far as the bucket pays; comes back while any wait. */
  private tick(): void {
    this.ticker = null;
    const now = Date.now();
    this.tokens = Math.min(this.streams, this.tokens + ((now - this.refilledAt) * WRITES_PER_SECOND) / 1000);
    this.refilledAt = now;
    for (let visited = 0; visited < this.groups.length; visited++) {
      this.turn %= this.groups.length;
      const group = this.groups[this.turn] as Group;
      if (group.pending.length > 0) {
        if (this.tokens < group.members.size) return this.schedule(TICK_MS);
        this.tokens -= group.members.size;
        this.writeGroup(group);
      }
      // A stream dropped while its group was written may have emptied the group and moved
      // the next one into its place: that one's turn is now.
      if (this.groups[this.turn] === group) this.turn += 1;
    }
  }

  private writeGroup(group: Group): void {
    if (group.pending.length === 0) return;
    const chunk = concat(group.pending);
    group.pending = [];
    for (const sub of group.members) this.send(sub, chunk);
  }

  private broadcast(chunk: Uint8Array): void {
    // Replaying streams too: a write is how a hub learns that a client went away.
    for (const sub of this.replaying) this.send(sub, chunk);
    for (const group of this.groups) for (const sub of group.members) this.send(sub, chunk);
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
