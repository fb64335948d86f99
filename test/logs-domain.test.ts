import { describe, expect, it } from "vitest";
import { type BatchRef, cursorAfter, LOG_START, logKey, planAfter, planTail, utf8Length } from "../src/domain/logs";

const batch = (seq: number, lineCount: number, bytes = lineCount * 10): BatchRef => ({ seq, lineCount, bytes });
const spans = (slices: { batch: BatchRef; from: number; to: number }[]) => slices.map((s) => [s.batch.seq, s.from, s.to]);

// Batches 10 (3 lines), 20 (4 lines), 30 (2 lines): a1 a2 a3 | b1 b2 b3 b4 | c1 c2.
const oldestFirst = [batch(10, 3), batch(20, 4), batch(30, 2)];
const newestFirst = [...oldestFirst].reverse();

describe("the tail", () => {
  it("takes the last n lines across batches, oldest first, cutting the oldest batch at its start", () => {
    expect(spans(planTail(newestFirst, 1))).toEqual([[30, 1, 2]]);
    expect(spans(planTail(newestFirst, 2))).toEqual([[30, 0, 2]]);
    expect(spans(planTail(newestFirst, 5))).toEqual([
      [20, 1, 4],
      [30, 0, 2],
    ]);
    expect(spans(planTail(newestFirst, 100))).toEqual([
      [10, 0, 3],
      [20, 0, 4],
      [30, 0, 2],
    ]);
    expect(planTail([], 100)).toEqual([]);
  });

  it("stops at the read's bounds on batches and bytes, but always reads the newest batch", () => {
    expect(spans(planTail(newestFirst, 100, { batches: 2, bytes: 1e9 }))).toEqual([
      [20, 0, 4],
      [30, 0, 2],
    ]);
    expect(spans(planTail(newestFirst, 100, { batches: 100, bytes: 60 }))).toEqual([
      [20, 0, 4],
      [30, 0, 2],
    ]);
    expect(spans(planTail(newestFirst, 100, { batches: 100, bytes: 1 }))).toEqual([[30, 0, 2]]);
  });

  it("ends at the newest line, so its cursor is the end of the view; an empty view starts at the start", () => {
    expect(cursorAfter(planTail(newestFirst, 1), LOG_START)).toEqual({ seq: 30, line: 2 });
    expect(cursorAfter(planTail([], 5), LOG_START)).toEqual(LOG_START);
  });
});

describe("following a cursor", () => {
  it("returns the lines after the cursor, oldest first, up to n, and the cursor after the last one", () => {
    const read = (cursor: { seq: number; line: number }, n: number) => {
      const slices = planAfter(oldestFirst, cursor, n);
      return { spans: spans(slices), cursor: cursorAfter(slices, cursor) };
    };
    expect(read(LOG_START, 4)).toEqual({ spans: [[10, 0, 3], [20, 0, 1]], cursor: { seq: 20, line: 1 } });
    expect(read({ seq: 20, line: 1 }, 4)).toEqual({ spans: [[20, 1, 4], [30, 0, 1]], cursor: { seq: 30, line: 1 } });
    expect(read({ seq: 30, line: 1 }, 4)).toEqual({ spans: [[30, 1, 2]], cursor: { seq: 30, line: 2 } });
    // Nothing new: the same cursor again.
    expect(read({ seq: 30, line: 2 }, 4)).toEqual({ spans: [], cursor: { seq: 30, line: 2 } });
    // A cursor past a batch's end (or between seqs, from another view) reads what follows.
    expect(read({ seq: 10, line: 99 }, 100).spans).toEqual([
      [20, 0, 4],
      [30, 0, 2],
    ]);
    expect(read({ seq: 15, line: 0 }, 100).spans).toEqual([
      [20, 0, 4],
      [30, 0, 2],
    ]);
    expect(read({ seq: 99, line: 0 }, 100)).toEqual({ spans: [], cursor: { seq: 99, line: 0 } });
  });

  it("stops at the read's bounds; the next read goes on from there", () => {
    const first = planAfter(oldestFirst, LOG_START, 100, { batches: 1, bytes: 1e9 });
    expect(spans(first)).toEqual([[10, 0, 3]]);
    const second = planAfter(oldestFirst, cursorAfter(first, LOG_START), 100, { batches: 1, bytes: 1e9 });
    expect(spans(second)).toEqual([[20, 0, 4]]);
    // Bigger than the byte bound alone: still read, so a read always moves on.
    expect(spans(planAfter([batch(1, 1, 1e9), batch(2, 1)], LOG_START, 100, { batches: 10, bytes: 100 }))).toEqual([[1, 0, 1]]);
  });
});

describe("limits and keys", () => {
  it("counts UTF-8 bytes without encoding", () => {
    for (const s of ["", "abc", "é", "€", "😀", "a😀b€é", "\ud800", "\udc00x", "x\ud800"]) expect(utf8Length(s), JSON.stringify(s)).toBe(new TextEncoder().encode(s).byteLength);
  });

  it("puts the team first in a batch's key", () => {
    expect(logKey("team_1", "exec-alpha", "logb_1")).toBe("logs/team_1/exec-alpha/logb_1.jsonl");
  });
});
