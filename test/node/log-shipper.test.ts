import { describe, expect, it } from "vitest";
import { ApiError } from "../../cli/worker/api";
import { LineQueue } from "../../cli/worker/line-queue";
import { LogShipper, MAX_LINE_BYTES, truncateLine } from "../../cli/worker/log-shipper";

describe("log shipping", () => {
  it("cuts lines over 8 KiB on a character boundary", () => {
    expect(truncateLine("short")).toBe("short");
    const long = "é".repeat(6000); // 12,000 bytes
    const cut = truncateLine(long);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(cut).toMatch(/^é+ …\[line truncated\]$/);
  });

  it("batches by task, at most 1,000 lines, and keeps a failed batch at the head, sending it again until it goes", async () => {
    const sent: Array<{ task_id?: string; lines: string[] }> = [];
    let down = 2; // a short outage: the first two tries fail
    const warnings: string[] = [];
    const shipper = new LogShipper({
      send: async (body) => {
        if (down > 0) {
          down -= 1;
          throw new ApiError(503, "busy", null);
        }
        sent.push(body);
      },
      flushMs: 60_000,
      batchLines: 10_000,
      warn: (l) => warnings.push(l),
    });
    shipper.push("t1", "sent once the API is back");
    await shipper.flush(20_000);
    expect(sent).toEqual([{ task_id: "t1", lines: ["sent once the API is back"] }]);
    expect(warnings).toEqual(["could not send 1 log lines (HTTP 503: busy); they are kept and sent again, the task goes on"]);
    for (let i = 0; i < 1500; i++) shipper.push("t1", `line ${i}`);
    shipper.push("t2", "other task");
    shipper.push(undefined, "worker line");
    await shipper.close();
    expect(sent.map((b) => [b.task_id, b.lines.length])).toEqual([
      ["t1", 1],
      ["t1", 1000],
      ["t1", 500],
      ["t2", 1],
      [undefined, 1],
    ]);
    expect(sent[2]?.lines.at(-1)).toBe("line 1499");
  });

  it("during an outage drops only at the cap, and says how many it dropped", async () => {
    const sent: string[][] = [];
    let down = true;
    const warnings: string[] = [];
    const shipper = new LogShipper({
      send: async (b) => {
        if (down) throw new ApiError(502, "bad gateway", null);
        sent.push(b.lines);
      },
      flushMs: 60_000,
      batchLines: 10_000,
      maxBuffered: 5,
      warn: (l) => warnings.push(l),
    });
    shipper.push("t", "before the outage");
    await shipper.flush(50); // its batch fails, and waits to be sent again
    for (let i = 1; i <= 8; i++) shipper.push("t", `l${i}`);
    down = false;
    await shipper.close(20_000);
    expect(sent).toEqual([["before the outage"], ["[switchboard] 3 log lines dropped: more than 5 were waiting to be sent", "l4", "l5", "l6", "l7", "l8"]]);
    expect(warnings).toContain("3 log lines were dropped: more than 5 were waiting to be sent");
  });

  it("drops a batch the API refuses outright (sent again, it would be refused again)", async () => {
    const sent: string[][] = [];
    let refuse = true;
    const warnings: string[] = [];
    const shipper = new LogShipper({
      send: async (b) => {
        if (refuse) {
          refuse = false;
          throw new ApiError(400, "bad lines", null);
        }
        sent.push(b.lines);
      },
      flushMs: 60_000,
      warn: (l) => warnings.push(l),
    });
    shipper.push("t", "refused");
    await shipper.flush();
    shipper.push("t", "taken");
    await shipper.close();
    expect(sent).toEqual([["taken"]]);
    expect(warnings).toEqual(["the logs refused 1 log lines (HTTP 400: bad lines); they are dropped, the task goes on"]);
  });

  it("keeps each batch's JSON under the API's 1 MiB body limit, however long the lines", async () => {
    const bodies: string[] = [];
    const shipper = new LogShipper({ send: async (b) => void bodies.push(JSON.stringify(b)), flushMs: 60_000, batchLines: 10_000 });
    for (let i = 0; i < 600; i++) shipper.push("t", `${i} ${"x".repeat(3000)}`);
    // Control characters are escaped to 6 bytes each in JSON: the budget counts them so.
    for (let i = 0; i < 300; i++) shipper.push("t", "\u0001".repeat(MAX_LINE_BYTES));
    await shipper.close(20_000);
    expect(bodies.length).toBeGreaterThan(1);
    for (const body of bodies) expect(Buffer.byteLength(body)).toBeLessThan(1024 * 1024);
    const lines = bodies.flatMap((b) => (JSON.parse(b) as { lines: string[] }).lines);
    expect(lines).toHaveLength(900);
    expect(lines.slice(0, 600).map((l) => Number(l.split(" ")[0]))).toEqual(Array.from({ length: 600 }, (_, i) => i));
  });

  it("keeps a bounded backlog and says how many lines it dropped", async () => {
    const sent: string[][] = [];
    const shipper = new LogShipper({ send: async (b) => void sent.push(b.lines), flushMs: 60_000, batchLines: 10_000, maxBuffered: 5 });
    for (let i = 0; i < 8; i++) shipper.push("t", `l${i}`);
    await shipper.close();
    expect(sent).toEqual([["[switchboard] 3 log lines dropped: more than 5 were waiting to be sent", "l3", "l4", "l5", "l6", "l7"]]);
  });

  it("drops the oldest line at the cap, warning once: 200,000 lines while the API stalls", () => {
    const warnings: string[] = [];
    const shipper = new LogShipper({ send: () => new Promise<void>(() => {}), flushMs: 60_000, warn: (l) => warnings.push(l) });
    for (let i = 0; i < 200_000; i++) shipper.push("t", `y ${i}`);
    expect(warnings).toEqual(["more than 20000 log lines are waiting to be sent; dropping the oldest (the task's log will say how many)"]);
    void shipper.close(0);
  });

  it("LineQueue drops at the cap copying each line at most once on average (splicing the backlog copied 20,000 per line)", () => {
    const q = new LineQueue<number>();
    const cap = 20_000;
    for (let i = 0; i < 200_000; i++) {
      q.push(i);
      if (q.length > cap) q.take(q.length - cap);
    }
    expect(q.length).toBe(cap);
    expect(q.at(0)).toBe(200_000 - cap);
    expect(q.moved).toBeLessThanOrEqual(200_000);
  });

  it("tells each task how many of its lines were dropped, in that task's log", async () => {
    const sent: Array<{ task_id?: string; lines: string[] }> = [];
    const shipper = new LogShipper({ send: async (b) => void sent.push(b), flushMs: 60_000, batchLines: 10_000, maxBuffered: 4 });
    for (const line of ["a1", "a2", "a3"]) shipper.push("a", line);
    for (const line of ["b1", "b2", "b3", "b4", "b5"]) shipper.push("b", line);
    await shipper.close();
    expect(sent).toEqual([
      { task_id: "a", lines: ["[switchboard] 3 log lines dropped: more than 4 were waiting to be sent"] },
      { task_id: "b", lines: ["[switchboard] 1 log line dropped: more than 4 were waiting to be sent", "b2", "b3", "b4", "b5"] },
    ]);
  });

  it("flush() sends every queued line, after a batch already in flight, before it returns", async () => {
    const sent: string[] = [];
    const shipper = new LogShipper({
      send: async (b) => {
        await new Promise((r) => setTimeout(r, 60));
        sent.push(...b.lines);
      },
      flushMs: 60_000,
    });
    // The 500th line starts a batch; flush() starts while it is in flight.
    for (let i = 0; i < 600; i++) shipper.push("t", `line ${i}`);
    await shipper.flush();
    expect(sent).toHaveLength(600);
    expect(sent.at(-1)).toBe("line 599");
    for (let i = 0; i < 100; i++) shipper.push("t", `last ${i}`);
    await shipper.close();
    expect(sent).toHaveLength(700);
  });

  it("flush() sends the whole backlog at the cap, batch after batch", async () => {
    const batches: string[][] = [];
    const send = async (b: { lines: string[] }) => {
      await new Promise((r) => setTimeout(r, 5));
      batches.push(b.lines);
    };
    const shipper = new LogShipper({ send, flushMs: 60_000, maxBuffered: 5000 });
    for (let i = 0; i < 20_000; i++) shipper.push("t", `line ${i}`);
    await shipper.flush();
    const lines = batches.flat();
    // The first batch (500 lines, started by the 500th) and the 5,000 newest: the rest were dropped at the cap.
    expect(lines.filter((l) => l.startsWith("line "))).toHaveLength(5500);
    expect(lines.at(-1)).toBe("line 19999");
    await shipper.close();
  });

  it("flush() ends when every batch fails, and when a send never answers, by its deadline", async () => {
    const warnings: string[] = [];
    const failing = new LogShipper({ send: async () => Promise.reject(new ApiError(503, "down", null)), flushMs: 60_000, batchLines: 100_000, warn: (l) => warnings.push(l) });
    for (let i = 0; i < 3000; i++) failing.push("t", `line ${i}`);
    await failing.close();
    expect(warnings).toHaveLength(1); // one warning per 30 s, not one per batch

    const hanging = new LogShipper({ send: () => new Promise<void>(() => {}), flushMs: 60_000 });
    for (let i = 0; i < 10; i++) hanging.push("t", `line ${i}`);
    const started = Date.now();
    await hanging.close(300);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("LineQueue keeps order across its compactions", () => {
    const q = new LineQueue<number>();
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 997; i++) q.push(next++);
      for (const n of q.take(round % 2 ? 1500 : 400)) expect(n).toBe(expected++);
      expect(q.at(0)).toBe(q.length > 0 ? expected : undefined);
      expect(q.length).toBe(next - expected);
    }
    expect(q.take(q.length + 5)).toHaveLength(next - expected);
    expect(q.length).toBe(0);
  });
});
