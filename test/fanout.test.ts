import { describe, expect, it } from "vitest";
import { Fanout, MAX_UNSENT_BYTES, type ReplaySource, WRITES_PER_SECOND } from "../durable-objects/fanout";

const HOUR = 3_600_000; // no heartbeat gets in the way of counting bytes
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads everything a stream gets until it ends or fails; `bytes` counts as it goes. */
function drain(readable: ReadableStream<Uint8Array>) {
  const got = { bytes: 0, chunks: 0, ended: null as null | "closed" | "errored" };
  const reader = readable.getReader();
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return void (got.ended = "closed");
        got.bytes += value.byteLength;
        got.chunks += 1;
      }
    } catch {
      got.ended = "errored";
    }
  })();
  return got;
}

describe("SSE fan-out", () => {
  it("drops a stream whose reader stopped once it is more than MAX_UNSENT_BYTES behind, and keeps sending to the others", async () => {
    const fanout = new Fanout(HOUR);
    const stalled = fanout.open(new Uint8Array(1)).readable;
    const got = drain(fanout.open(new Uint8Array(1)).readable);

    const chunk = new Uint8Array(256 * 1024);
    const chunks = Math.ceil((2 * MAX_UNSENT_BYTES) / chunk.byteLength);
    let droppedAfter = -1;
    for (let i = 0; i < chunks; i++) {
      fanout.enqueue(chunk);
      await sleep(12); // past the pacing interval: one write per chunk
      if (droppedAfter < 0 && fanout.size === 1) droppedAfter = 1 + (i + 1) * chunk.byteLength;
    }
    // Dropped once it was over the limit, not before.
    expect(droppedAfter).toBeGreaterThan(MAX_UNSENT_BYTES);
    expect(droppedAfter).toBeLessThanOrEqual(MAX_UNSENT_BYTES + 2 * chunk.byteLength);
    // The reading stream got every byte; the stalled one finds its stream failed when it reads again.
    await sleep(20);
    expect(got.bytes).toBe(1 + chunks * chunk.byteLength);
    const stalledGot = drain(stalled);
    await sleep(20);
    expect(stalledGot.ended).toBe("errored");
    expect(fanout.size).toBe(1);
  });

  it("goes on sending to new streams after its only stream was dropped while being written", async () => {
    const fanout = new Fanout(HOUR);
    fanout.open(new Uint8Array(1)); // never read
    const big = new Uint8Array(MAX_UNSENT_BYTES + 1);
    fanout.enqueue(big);
    await sleep(12);
    fanout.enqueue(big); // over the limit: dropped in this write, and its group with it
    await sleep(12);
    expect(fanout.size).toBe(0);
    const got = drain(fanout.open(new Uint8Array(1)).readable);
    fanout.enqueue(new Uint8Array(10));
    await sleep(12);
    expect(got.bytes).toBe(11);
  });

  it("forgets a stream its reader cancelled", async () => {
    const fanout = new Fanout(HOUR);
    const { readable } = fanout.open(new Uint8Array(1));
    fanout.open(new Uint8Array(1));
    expect(fanout.size).toBe(2);
    await readable.cancel();
    expect(fanout.size).toBe(1);
  });

  it("gathers events queued together into one write per stream", async () => {
    const fanout = new Fanout(HOUR);
    const got = drain(fanout.open(new TextEncoder().encode("retry: 2000\n\n")).readable);
    await sleep(10);
    const before = got.chunks;
    for (let i = 0; i < 10; i++) fanout.enqueue(new TextEncoder().encode(`data: ${i}\n\n`));
    await sleep(20);
    expect(got.chunks - before).toBe(1);
    expect(got.bytes).toBe("retry: 2000\n\n".length + 10 * "data: 0\n\n".length);
  });

  it("writes an event to every stream at once when the hub is idle", async () => {
    const fanout = new Fanout(HOUR);
    const streams = Array.from({ length: 12 }, () => drain(fanout.open(new Uint8Array(1)).readable));
    await sleep(50); // idle: the bucket is full again
    fanout.enqueue(new Uint8Array(10));
    await sleep(5);
    expect(streams.map((g) => g.bytes)).toEqual(streams.map(() => 11));
  });

  it("under load, keeps to about WRITES_PER_SECOND writes in all, and every stream still gets every event", async () => {
    const fanout = new Fanout(HOUR);
    const streams = Array.from({ length: 50 }, () => drain(fanout.open(new Uint8Array(1)).readable));
    await sleep(20);
    const writesBefore = streams.reduce((n, g) => n + g.chunks, 0);
    const started = Date.now();
    let events = 0;
    while (Date.now() - started < 500) {
      fanout.enqueue(new Uint8Array(100));
      events += 1;
      await sleep(1);
    }
    const elapsed = Date.now() - started;
    await sleep(150); // the last streams' turn
    const writes = streams.reduce((n, g) => n + g.chunks, 0) - writesBefore;
    // One burst to every stream (the full bucket), then the refill rate; unpaced, it would be events × 50.
    expect(events).toBeGreaterThan(100);
    expect(writes).toBeLessThanOrEqual(50 + (WRITES_PER_SECOND * (elapsed + 150)) / 1000 + 10);
    expect(streams.map((g) => g.bytes)).toEqual(streams.map(() => 1 + events * 100));
  });

  it("ends every stream cleanly on closeAll once its reader took what was queued, and forgets them", async () => {
    const fanout = new Fanout(HOUR);
    const a = fanout.open(new Uint8Array(3)).readable;
    const b = fanout.open(new Uint8Array(3)).readable;
    const gotA = drain(a);
    const closed = fanout.closeAll(200);
    const gotB = drain(b); // starts reading after the close: still gets its bytes, then the end
    await closed;
    await sleep(5);
    expect([gotA.ended, gotB.ended, gotB.bytes, fanout.size]).toEqual(["closed", "closed", 3, 0]);
  });

  it("reads a replay a page per read of its reader, heartbeats it meanwhile, and forgets it when cancelled", async () => {
    const fanout = new Fanout(10);
    const pages: number[] = [];
    // Ten pages of 1 KB, events 1..10: nothing is read before the reader asks.
    const source: ReplaySource = {
      next: (after) => {
        pages.push(after);
        return { chunk: new Uint8Array(1024).fill(after + 1), last: after + 1, caughtUp: after + 1 === 10 };
      },
    };
    const { readable } = fanout.open(new Uint8Array(1), { after: 0, source });
    await sleep(50); // heartbeats
    expect(pages).toEqual([]);
    expect(fanout.unsentBytes).toBeLessThan(1024);
    const reader = readable.getReader();
    // Per chunk: the event a page carries, or 0 for the first chunk and the heartbeats.
    const got: number[] = [];
    while (got.filter((b) => b > 0).length < 3) {
      const { value } = await reader.read();
      got.push((value as Uint8Array).byteLength === 1024 ? ((value as Uint8Array)[0] as number) : 0);
    }
    expect(got.filter((b) => b > 0)).toEqual([1, 2, 3]);
    expect(got.filter((b) => b === 0).length).toBeGreaterThan(1);
    expect(pages).toEqual([0, 1, 2]);
    expect(fanout.size).toBe(1);
    await reader.cancel();
    expect(fanout.size).toBe(0);
  });
});
