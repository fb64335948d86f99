// One topic's live streams in a Node process: the SSE fan-out shared by the peer's SSE
// server and the in-memory limit, so the two differ only in where events come from.
import { HEARTBEAT, HEARTBEAT_MS } from "./common.mjs";

/** A stream with this much unsent data is too slow and is dropped, never waited on (like the hubs). */
const MAX_BUFFERED_BYTES = 8 << 20;
/**
 * Writes per second the fan-out allows itself across all streams (FANOUT_WRITES_PER_S).
 * Each write costs a syscall whatever its size, so with many streams events are gathered
 * and written together: 100 streams get every event at once (200/s is 20,000 writes/s),
 * 1,000 streams get a write every 50 ms. Switchboard's hubs pace the same way, at 1,000/s.
 */
const WRITES_PER_S = Number(process.env.FANOUT_WRITES_PER_S ?? 20_000);

export class TopicFanout {
  /** `keep`: how many recent events stay in memory, for catching up new streams (and replay in the limit). */
  constructor({ keep }) {
    this.keep = keep;
    this.recent = []; // [{seq, chunk}], ascending; at most `keep`
    this.lastSeq = 0; // highest seq emitted
    this.subs = new Set();
    this.batch = [];
    this.flushScheduled = false;
    this.lastFlush = 0;
    this.heartbeat = null;
  }

  /** Recent events with seq > after, or null when they are no longer all in memory. */
  since(after) {
    if (after >= this.lastSeq) return [];
    const oldest = this.recent.length ? this.recent[0].seq : this.lastSeq + 1;
    if (after < oldest - 1) return null;
    return this.recent.slice(this.recent.findIndex((e) => e.seq > after));
  }

  /**
   * Sends `first` (retry + snapshot or replay) and then every event after `cursor`, the
   * highest seq `first` covers. Emitted events the caller's read did not see are sent from
   * memory in the same synchronous step, so the stream has no gap and no duplicate.
   */
  attach(res, first, cursor) {
    const missed = this.since(cursor);
    if (missed === null) return false;
    const sub = { res, cursor: Math.max(cursor, this.lastSeq) };
    res.write(missed.length ? Buffer.concat([first, ...missed.map((e) => e.chunk)]) : first);
    this.subs.add(sub);
    res.on("close", () => this.drop(sub));
    this.heartbeat ??= setInterval(() => {
      for (const s of this.subs) this.write(s, HEARTBEAT);
    }, HEARTBEAT_MS);
    return true;
  }

  /**
   * Queues an event (seqs must come in order). Events emitted in one turn of the event loop
   * go out together; beyond that, at most one write per stream every 1000 × streams /
   * WRITES_PER_S ms (none while idle: the first event after a pause leaves at once).
   */
  emit(seq, chunk) {
    this.lastSeq = seq;
    this.recent.push({ seq, chunk });
    if (this.recent.length > this.keep * 1.25) this.recent.splice(0, this.recent.length - this.keep);
    this.batch.push({ seq, chunk });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      const wait = this.lastFlush + (1000 * this.subs.size) / WRITES_PER_S - performance.now();
      if (wait > 1) setTimeout(() => this.flush(), wait);
      else setImmediate(() => this.flush());
    }
  }

  flush() {
    this.flushScheduled = false;
    this.lastFlush = performance.now();
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0) return;
    const first = batch[0].seq;
    const last = batch[batch.length - 1].seq;
    const all = batch.length === 1 ? batch[0].chunk : Buffer.concat(batch.map((e) => e.chunk));
    for (const sub of this.subs) {
      if (sub.cursor >= last) continue;
      // A stream attached during this turn already has part of the batch.
      const out = sub.cursor < first ? all : Buffer.concat(batch.filter((e) => e.seq > sub.cursor).map((e) => e.chunk));
      sub.cursor = last;
      this.write(sub, out);
    }
  }

  write(sub, buf) {
    if (sub.res.writableLength > MAX_BUFFERED_BYTES) {
      sub.res.destroy();
      this.drop(sub);
      return;
    }
    sub.res.write(buf);
  }

  drop(sub) {
    this.subs.delete(sub);
    if (this.subs.size === 0 && this.heartbeat) {
      clearInterval(this.heartbeat);
      this.heartbeat = null;
    }
  }

  /** Ends every stream (a graceful stop): clients reconnect with Last-Event-ID. */
  endAll() {
    for (const sub of this.subs) sub.res.end();
    this.subs.clear();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }
}
