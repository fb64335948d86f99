import { ApiError } from "./api";
import { LineQueue } from "./line-queue";

/** The logs API's limits: 1–1,000 lines a batch, each at most 8 KiB. */
export const MAX_BATCH_LINES = 1000;
export const MAX_LINE_BYTES = 8 * 1024;
/**
 * A batch's lines as JSON stay under this, well inside the API's 1 MiB body limit: 1,000
 * lines of 8 KiB would be 8 MiB, and a batch over the limit is refused whole (413).
 */
export const MAX_BATCH_JSON_BYTES = 900 * 1024;

export interface LogShipperOptions {
  send: (body: { task_id?: string; lines: string[] }) => Promise<void>;
  /** Flush this often while lines wait (default 1 s)… */
  flushMs?: number;
  /** …or as soon as this many wait (default 500). */
  batchLines?: number;
  /** Lines kept while the API is slow or down; the oldest are dropped beyond it (default 20,000). */
  maxBuffered?: number;
  warn?: (line: string) => void;
}

interface Entry {
  taskId: string | undefined;
  text: string;
}

/** A batch taken off the queue: sent, or kept at the head and sent again until it is. */
interface Batch {
  taskId: string | undefined;
  lines: string[];
  /** Queued lines in it (the rest is the line saying how many were dropped). */
  queued: number;
  /** The drop count its first line reports. */
  droppedCount: number;
}

/** The wait before a failed batch is sent again: doubling from 1 s to 30 s. */
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

/**
 * Ships an agent's output to `POST /v1/workers/{wid}/logs` in batches, in the background:
 * `push` never waits, so a slow or failing API never slows the agent. A batch that fails
 * stays at the head and is sent again (with backoff) until it goes through: a short outage
 * costs the log nothing. Lines are dropped only when more than `maxBuffered` wait (the
 * oldest first, and the task's log says how many), or when the API refuses a batch outright
 * (a 4xx other than 404, 408, 429: sent again, it would be refused again).
 */
export class LogShipper {
  private readonly queue = new LineQueue<Entry>();
  /** Lines dropped at the cap and not yet reported, by task (undefined: the worker's own log). */
  private readonly dropped = new Map<string | undefined, number>();
  /** Lines pushed, and lines done with (sent, refused or dropped): what `flush` counts. */
  private pushed = 0;
  private removed = 0;
  /** The batch being sent, or waiting to be sent again after it failed. */
  private batch: Batch | null = null;
  private inFlight: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  /** No send before this (epoch ms): the backoff after a failure, or a minute after a 404. */
  private pausedUntil = 0;
  private failures = 0;
  private lastSendWarning = 0;
  private lastDropWarning = 0;
  /** Lines the logs were told were dropped (sent in a batch's first line) and the terminal not yet. */
  private droppedUnsaid = 0;

  constructor(private readonly options: LogShipperOptions) {
    this.timer = setInterval(() => void this.flushSome(), options.flushMs ?? 1000);
    this.timer.unref();
  }

  /** O(1): called for every line of an agent that may print hundreds of thousands. */
  push(taskId: string | undefined, line: string): void {
    this.queue.push({ taskId, text: truncateLine(line) });
    this.pushed += 1;
    const max = this.options.maxBuffered ?? 20_000;
    if (this.queue.length > max) {
      const [oldest] = this.queue.take(1) as [Entry];
      this.removed += 1;
      this.dropped.set(oldest.taskId, (this.dropped.get(oldest.taskId) ?? 0) + 1);
      if (Date.now() - this.lastDropWarning > 30_000) {
        this.lastDropWarning = Date.now();
        this.options.warn?.(`more than ${max} log lines are waiting to be sent; dropping the oldest (the task's log will say how many)`);
      }
    }
    if (this.queue.length >= (this.options.batchLines ?? 500)) void this.flushSome();
  }

  /**
   * Sends every line queued when it is called, batch after batch (after the batch already in
   * flight or waiting to be sent again, if any), and the drop counts, giving up after
   * `timeoutMs` (the rest stays queued, and is sent later). Lines pushed meanwhile do not
   * keep it going.
   */
  async flush(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const target = this.pushed;
    while ((this.removed < target || this.dropped.size > 0) && Date.now() < deadline) {
      const wait = this.pausedUntil - Date.now();
      await beforeDeadline(wait > 0 ? new Promise<void>((r) => setTimeout(r, wait)) : (this.inFlight ?? this.flushSome()), deadline);
    }
  }

  async close(timeoutMs = 5000): Promise<void> {
    await this.flush(timeoutMs);
    clearInterval(this.timer);
    this.sayDropped(true);
  }

  /**
   * Sends one batch: the one that failed last, else the oldest lines of one task, at most
   * 1,000 and MAX_BATCH_JSON_BYTES of JSON, after a line saying how many of that task's lines
   * were dropped, if any were. A task whose dropped lines are not at the head of the queue
   * gets that line on its own.
   */
  private flushSome(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    if (Date.now() < this.pausedUntil) return Promise.resolve();
    const batch = this.batch ?? this.nextBatch();
    if (!batch) return Promise.resolve();
    this.batch = batch;
    this.inFlight = this.options
      .send({ ...(batch.taskId ? { task_id: batch.taskId } : {}), lines: batch.lines })
      .then(
        () => this.done(batch),
        (e: unknown) => {
          const status = e instanceof ApiError ? e.status : null;
          const refused = status !== null && status >= 400 && status < 500 && ![404, 408, 429].includes(status);
          if (refused) {
            this.done(batch);
            this.options.warn?.(`the logs refused ${batch.lines.length} log lines (${errorText(e)}); they are dropped, the task goes on`);
            return;
          }
          this.failures += 1;
          // 404: a server without the logs route (or a task it no longer has); a minute.
          const wait = status === 404 ? 60_000 : Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (this.failures - 1));
          this.pausedUntil = Date.now() + (e instanceof ApiError && e.retryAfterMs !== null ? Math.max(wait, e.retryAfterMs) : wait);
          if (Date.now() - this.lastSendWarning > 30_000) {
            this.lastSendWarning = Date.now();
            this.options.warn?.(`could not send ${batch.lines.length} log lines (${errorText(e)}); they are kept and sent again, the task goes on`);
          }
        },
      )
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  private nextBatch(): Batch | null {
    if (this.queue.length === 0 && this.dropped.size === 0) return null;
    const [taskId, droppedCount] = this.dropped.entries().next().value ?? [this.queue.at(0)?.taskId, 0];
    this.dropped.delete(taskId);
    const lines: string[] = droppedCount > 0 ? [`[switchboard] ${droppedCount} log ${droppedCount === 1 ? "line" : "lines"} dropped: more than ${this.options.maxBuffered ?? 20_000} were waiting to be sent`] : [];
    let n = 0;
    let bytes = 0;
    while (lines.length + n < MAX_BATCH_LINES) {
      const e = this.queue.at(n);
      if (!e || e.taskId !== taskId) break;
      // As sent: JSON-escaped (a control character takes 6 bytes), plus the comma.
      const size = Buffer.byteLength(JSON.stringify(e.text)) + 1;
      if (n > 0 && bytes + size > MAX_BATCH_JSON_BYTES) break;
      bytes += size;
      n++;
    }
    // Off the queue now, so the cap's drops (from the queue's head) never take a line of a
    // batch in flight; the batch is at most 1,000 lines more than the cap.
    for (const e of this.queue.take(n)) lines.push(e.text);
    return { taskId, lines, queued: n, droppedCount };
  }

  /** The batch went (or was refused for good): the next one may go. */
  private done(batch: Batch): void {
    this.batch = null;
    this.removed += batch.queued;
    this.failures = 0;
    this.pausedUntil = 0;
    this.droppedUnsaid += batch.droppedCount;
    this.sayDropped(false);
  }

  /**
   * How many lines were dropped, counted as the logs were told: at most every 30 s, and at
   * close (with those the logs could not be told of).
   */
  private sayDropped(closing: boolean): void {
    let count = this.droppedUnsaid;
    if (closing) for (const n of this.dropped.values()) count += n;
    if (count === 0 || (!closing && Date.now() - this.lastDropWarning <= 30_000)) return;
    this.lastDropWarning = Date.now();
    this.options.warn?.(`${count} log ${count === 1 ? "line was" : "lines were"} dropped: more than ${this.options.maxBuffered ?? 20_000} were waiting to be sent`);
    this.droppedUnsaid = 0;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `work`, or `deadline` (epoch ms) if that comes first; the timer never outlives it. */
async function beforeDeadline(work: Promise<void>, deadline: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
  });
  try {
    await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A line within the API's 8 KiB, cut on a character boundary and marked. */
export function truncateLine(line: string): string {
  if (line.length * 3 <= MAX_LINE_BYTES || Buffer.byteLength(line, "utf8") <= MAX_LINE_BYTES) return line;
  const marker = " …[line truncated]";
  let cut = Buffer.from(line, "utf8").subarray(0, MAX_LINE_BYTES - Buffer.byteLength(marker) - 4).toString("utf8");
  // A character cut in half decodes as U+FFFD: drop it.
  cut = cut.replace(/\uFFFD$/, "");
  return cut + marker;
}
