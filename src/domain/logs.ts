/** Worker logs without I/O: the limits, where a batch lives, and which lines a read returns. */

export const MAX_LINES_PER_BATCH = 1000;
/** Of UTF-8; a longer line is refused (400 naming its index), never cut. */
export const MAX_LINE_BYTES = 8 * 1024;
export const DEFAULT_TAIL_LINES = 100;
export const MAX_TAIL_LINES = 5000;
/**
 * One read fetches at most this many R2 objects (a Worker's subrequests are bounded: 1,000
 * on the paid plan) and at most this many bytes of them: 5,000 lines of 8 KiB would be
 * 40 MB, too much for an isolate's 128 MB once parsed and encoded again. A follower's next
 * poll picks up where the cursor stopped; a tail over many tiny batches is shorter than asked.
 */
export const MAX_BATCHES_PER_READ = 200;
export const MAX_READ_BYTES = 4 * 1024 * 1024;
/** The cron deletes batches older than this, their R2 objects first, then their index rows. */
export const LOG_RETENTION_DAYS = 30;

/** The R2 key of a batch: the team first, so no key of one team is ever another's. */
export function logKey(teamId: string, workerId: string, batchId: string): string {
  return `logs/${teamId}/${workerId}/${batchId}.jsonl`;
}

/** Bytes of `s` as UTF-8 (a lone surrogate counts as the 3 bytes of U+FFFD it becomes), without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * A position in a team's logs: every line of the batches before `seq`, and the first `line`
 * lines of batch `seq`, have been read. Seqs order all of a team's batches, so one cursor
 * means the same in every view (a worker, a worker's task, a task).
 */
export interface LogCursor {
  seq: number;
  line: number;
}
/** Before every batch: a view with no lines yet answers this, and following it later reads all. */
export const LOG_START: LogCursor = { seq: 0, line: 0 };

/** What a plan needs to know of a batch (its index row). */
export interface BatchRef {
  seq: number;
  lineCount: number;
  bytes: number;
}

/** Lines `from` (inclusive) to `to` (exclusive) of a batch. */
export interface Slice<B extends BatchRef> {
  batch: B;
  from: number;
  to: number;
}

export interface ReadBounds {
  batches: number;
  bytes: number;
}
const BOUNDS: ReadBounds = { batches: MAX_BATCHES_PER_READ, bytes: MAX_READ_BYTES };

/** Whether one more batch fits the read (the first one always does, so a read always moves on). */
function fits(taken: number, bytes: number, batch: BatchRef, bounds: ReadBounds): boolean {
  return taken === 0 || (taken < bounds.batches && bytes + batch.bytes <= bounds.bytes);
}

/**
 * The tail: the last `n` lines of a view whose batches are given newest first. Returns the
 * slices oldest first; the oldest may be cut at its start.
 */
export function planTail<B extends BatchRef>(newestFirst: B[], n: number, bounds = BOUNDS): Slice<B>[] {
  const slices: Slice<B>[] = [];
  let lines = 0;
  let bytes = 0;
  for (const batch of newestFirst) {
    if (lines >= n || !fits(slices.length, bytes, batch, bounds)) break;
    const take = Math.min(batch.lineCount, n - lines);
    slices.push({ batch, from: batch.lineCount - take, to: batch.lineCount });
    lines += take;
    bytes += batch.bytes;
  }
  return slices.reverse();
}

/**
 * Following: up to `n` lines after `cursor`, oldest first, from batches given oldest first
 * (those with seq ≥ the cursor's). The last slice may be cut at its end.
 */
export function planAfter<B extends BatchRef>(oldestFirst: B[], cursor: LogCursor, n: number, bounds = BOUNDS): Slice<B>[] {
  const slices: Slice<B>[] = [];
  let lines = 0;
  let bytes = 0;
  for (const batch of oldestFirst) {
    if (batch.seq < cursor.seq) continue;
    const from = batch.seq === cursor.seq ? Math.min(cursor.line, batch.lineCount) : 0;
    if (from >= batch.lineCount) continue;
    if (lines >= n || !fits(slices.length, bytes, batch, bounds)) break;
    const take = Math.min(batch.lineCount - from, n - lines);
    slices.push({ batch, from, to: from + take });
    lines += take;
    bytes += batch.bytes;
  }
  return slices;
}

/** Where a reader is after `slices`: after their last line, or still at `before` when they are empty. */
export function cursorAfter(slices: Slice<BatchRef>[], before: LogCursor): LogCursor {
  const last = slices[slices.length - 1];
  return last ? { seq: last.batch.seq, line: last.to } : before;
}
