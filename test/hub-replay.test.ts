import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { REPLAY_PAGE_BYTES } from "../durable-objects/hub";
import type { TopicHub } from "../durable-objects/topic-hub";
import type { AgentEvent } from "../src/domain/events";

const init = { id: "t1", session_id: "s1", team_id: "team-replay" };
/** A usage report with a large extra field (kept, by design, in the log and the stream). */
const PAD = 200_000;
const usage = (id: string, extra: Record<string, unknown> = {}): AgentEvent => ({ id, type: "usage.reported", session_id: "s1", topic_id: "t1", data: { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }], ...extra } });
const big = (id: string) => usage(id, { pad: "x".repeat(PAD) });
const small = (id: string) => usage(id);
const newHub = () => env.TOPIC_HUB.getByName(`team-replay:s1:${crypto.randomUUID()}`);

/** Reads a stream's chunks one at a time (each read is what the hub enqueued), keeping the event ids. */
class ChunkReader {
  readonly ids: number[] = [];
  readonly sizes: number[] = [];
  private text = "";
  private readonly decoder = new TextDecoder();
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(res: Response) {
    this.reader = (res.body as ReadableStream<Uint8Array>).getReader();
  }

  /** One chunk; heartbeats are read past. */
  async read(): Promise<void> {
    for (;;) {
      const { done, value } = await this.reader.read();
      if (done) throw new Error("stream ended");
      this.sizes.push(value.byteLength);
      this.text += this.decoder.decode(value, { stream: true });
      let end: number;
      let events = 0;
      while ((end = this.text.indexOf("\n\n")) >= 0) {
        const block = this.text.slice(0, end);
        this.text = this.text.slice(end + 2);
        const id = /^id: (\d+)$/m.exec(block);
        if (id && !/^event: snapshot$/m.test(block)) {
          this.ids.push(Number(id[1]));
          events += 1;
        }
      }
      if (events > 0 || !/^: heartbeat/.test(new TextDecoder().decode(value))) return;
    }
  }

  /** Reads until the stream has sent event `seq`. */
  async readThrough(seq: number): Promise<void> {
    while ((this.ids.at(-1) ?? 0) < seq) await this.read();
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => {});
  }
}

const resume = (hub: TopicHub, lastId: number) => hub.fetch(new Request("https://hub/stream", { headers: { "Last-Event-ID": String(lastId) } }));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("replay after Last-Event-ID", () => {
  it("is read from the log a page at a time as the reader takes it, never built whole in the hub", async () => {
    const stub = newHub();
    await stub.apply(init, range(1, 20).map((i) => big(`e${i}`))); // 4 MB: all of the test history
    await runInDurableObject(stub, async (hub: TopicHub) => {
      const streams = [await resume(hub, 0), await resume(hub, 0), await resume(hub, 0)];
      await new Promise((r) => setTimeout(r, 50));
      // Three clients that have not read yet: the hub holds their `retry:` (and heartbeats,
      // 13 bytes each), far under a page; not 12 MB of replay.
      const held = 16 * 1024;
      expect(await hub.unsentBytes()).toBeLessThan(held);
      const reader = new ChunkReader(streams[0] as Response);
      await reader.readThrough(20);
      expect(reader.ids).toEqual(range(1, 20));
      // Each chunk is one page: within the budget, or one event when an event alone is larger.
      expect(reader.sizes.length).toBeGreaterThan(4);
      expect(Math.max(...reader.sizes)).toBeLessThanOrEqual(REPLAY_PAGE_BYTES + 1024);
      expect(await hub.unsentBytes()).toBeLessThan(held);
      await reader.close();
      for (const res of streams.slice(1)) await res.body?.cancel();
    });
    expect(await stub.subscriberCount()).toBe(0);
  });

  it("joins the live events after its last page: events applied while it is paged arrive once, in order", async () => {
    const stub = newHub();
    await stub.apply(init, range(1, 10).map((i) => big(`e${i}`)));
    const got = await runInDurableObject(stub, async (hub: TopicHub) => {
      // A live stream, so that events applied while the replay is paged wait in its group.
      const live = new ChunkReader(await hub.fetch(new Request("https://hub/stream")));
      await live.read(); // retry and snapshot
      const resumed = new ChunkReader(await resume(hub, 0));
      await resumed.read(); // retry
      await resumed.read(); // a page
      expect(resumed.ids.length).toBeGreaterThan(0);
      expect(resumed.ids.length).toBeLessThan(10);
      await hub.apply(init, [small("l1"), big("l2")]); // seq 11, 12
      await resumed.readThrough(10);
      // Applied and only queued for the live stream's next write when the replay reads its
      // last page: the replay sends it, and must not get it again from the group.
      await hub.apply(init, [small("l3")]); // seq 13
      await resumed.readThrough(13);
      await hub.apply(init, [small("l4")]); // seq 14, live to both
      await resumed.readThrough(14);
      await live.readThrough(14);
      await new Promise((r) => setTimeout(r, 50)); // anything sent twice would be here by now
      await hub.apply(init, [small("l5")]); // seq 15
      await resumed.readThrough(15);
      await live.readThrough(15);
      await resumed.close();
      await live.close();
      return { resumed: resumed.ids, live: live.ids };
    });
    expect(got.resumed).toEqual(range(1, 15));
    expect(got.live).toEqual(range(11, 15));
  });

  it("ends a stream whose replay fell behind the kept history, and its reconnect gets a reset", async () => {
    const stub = newHub();
    await stub.apply(init, range(1, 20).map((i) => big(`e${i}`))); // STREAM_HISTORY is 20 in tests
    const after = await runInDurableObject(stub, async (hub: TopicHub) => {
      const resumed = new ChunkReader(await resume(hub, 0));
      await resumed.read();
      await resumed.read();
      const last = resumed.ids.at(-1) as number;
      // Trims the log past what the reader got: its next page would skip events.
      await hub.apply(init, range(1, 10).map((i) => small(`s${i}`)));
      await expect(resumed.readThrough(30)).rejects.toThrow();
      expect(resumed.ids).toEqual(range(1, last));
      return last;
    });
    expect(await stub.subscriberCount()).toBe(0);
    const first = await runInDurableObject(stub, async (hub: TopicHub) => {
      const reader = (await resume(hub, after)).body?.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      const { value } = await reader.read();
      await reader.cancel();
      return new TextDecoder().decode(value);
    });
    expect(first).toMatch(/^retry: 2000\n\nevent: reset\ndata: \{"reason":"expired"[^\n]*\n\nid: 30\nevent: snapshot\n/);
  });
});
