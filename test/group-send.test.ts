import { describe, expect, it, vi } from "vitest";
import { chunkByLimits, GroupSender, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES } from "../src/queue/group-send";

/** A queue whose sendBatch calls are recorded and settled by the test. */
function fakeQueue() {
  const calls: { bodies: number[]; settle: (error?: Error) => void }[] = [];
  const sendBatch = (bodies: number[]) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ bodies, settle: (error) => (error ? reject(error) : resolve()) });
    });
  return { calls, sendBatch };
}

const tick = () => new Promise((r) => setTimeout(r, 0));
/** Waiting requests look again on their own timers (1 to 8 ms), so a test waits for their send rather than for one tick. */
const sends = (q: ReturnType<typeof fakeQueue>, n: number) => vi.waitFor(() => expect(q.calls).toHaveLength(n), { timeout: 2_000, interval: 2 });

describe("GroupSender: requests in flight together share one sendBatch", () => {
  it("sends a lone message at once, then gathers the ones that arrive while it is in flight into one batch", async () => {
    const q = fakeQueue();
    const sender = new GroupSender<number>(q.sendBatch);
    const first = sender.send(1, 10);
    await tick();
    expect(q.calls.map((c) => c.bodies)).toEqual([[1]]);

    const later = [2, 3, 4, 5].map((n) => sender.send(n, 10));
    await tick();
    expect(q.calls).toHaveLength(1); // they wait for the batch in flight

    q.calls[0]?.settle();
    await first;
    await sends(q, 2);
    expect(q.calls.map((c) => c.bodies)).toEqual([[1], [2, 3, 4, 5]]);

    let answered = 0;
    for (const p of later) void p.then(() => answered++);
    await tick();
    expect(answered).toBe(0); // nobody answers before the queue accepted its message
    q.calls[1]?.settle();
    await Promise.all(later);
    expect(answered).toBe(4);
  });

  it("rejects exactly the requests whose batch failed", async () => {
    const q = fakeQueue();
    const sender = new GroupSender<number>(q.sendBatch);
    const first = sender.send(1, 10);
    await tick();
    const second = [sender.send(2, 10), sender.send(3, 10)];
    q.calls[0]?.settle(new Error("queue down"));
    await expect(first).rejects.toThrow("queue down");
    await sends(q, 2);
    expect(q.calls[1]?.bodies).toEqual([2, 3]);
    q.calls[1]?.settle();
    await expect(Promise.all(second)).resolves.toEqual([undefined, undefined]);
  });

  it("stops waiting for a send that never settles: its messages fail, the others are sent anew", async () => {
    const q = fakeQueue();
    const sender = new GroupSender<number>(q.sendBatch, 30);
    const stuck = sender.send(1, 10);
    await tick();
    const waiting = sender.send(2, 10);
    await expect(stuck).rejects.toThrow("did not confirm");
    while (q.calls.length < 2) await new Promise((r) => setTimeout(r, 5));
    q.calls[1]?.settle();
    await expect(waiting).resolves.toBeUndefined();
    expect(q.calls.map((c) => c.bodies)).toEqual([[1], [2]]);
  }, 5_000);

  it("splits what gathered into batches within the queue's limits, in order", () => {
    const many = Array.from({ length: 250 }, (_, i) => ({ id: i, bytes: 10 }));
    expect(chunkByLimits(many).map((c) => c.length)).toEqual([MAX_BATCH_MESSAGES, MAX_BATCH_MESSAGES, 50]);
    const big = Array.from({ length: 5 }, (_, i) => ({ id: i, bytes: 100 * 1024 }));
    const chunks = chunkByLimits(big);
    expect(chunks.map((c) => c.map((x) => x.id))).toEqual([[0, 1], [2, 3], [4]]);
    for (const c of chunks) expect(c.reduce((n, x) => n + x.bytes, 0)).toBeLessThanOrEqual(MAX_BATCH_BYTES);
  });
});
