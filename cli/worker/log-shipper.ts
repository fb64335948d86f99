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

/**
 * Ships an agent's output to `POST /v1/workers/{wid}/logs` in batches, in the background:
 * `push` never waits, so a slow or failing API never slows the agent, and a failed batch is
 * dropped with a warning rather than failing the task (logs are best effort).
 */
export class LogShipper {
  private readonly queue = new LineQueue<Entry>();
  /** Lines dropped at the cap and not yet reported, by task (undefined: the worker's own log). */
  private readonly dropped = new Map<string | undefined, number>();
  /** Lines pushed, and lines taken off the queue (sent, failed or dropped): what `flush` counts. */
  private pushed = 0;
  private removed = 0;
  private inFlight: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private pausedUntil = 0;
  private lastSendWarning = 0;
  private lastDropWarning = 0;

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
   * flight, if any), and the drop counts, giving up after `timeoutMs` or while sending is
   * paused (the rest stays queued). Each batch leaves the queue as it is sent, and a failed one
   * is dropped, so a failing API cannot keep it going, and lines pushed meanwhile cannot either.
   */
  async flush(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const target = this.pushed;
    while ((this.removed < target || this.dropped.size > 0) && Date.now() < deadline && Date.now() >= this.pausedUntil) {
      await beforeDeadline(this.inFlight ?? this.flushSome(), deadline);
    }
  }

  async close(timeoutMs = 5000): Promise<void> {
    await this.flush(timeoutMs);
    clearInterval(this.timer);
  }

  /**
   * One batch: the oldest lines of one task, at most 1,000 and MAX_BATCH_JSON_BYTES of JSON,
   * after a line saying how many of that task's lines were dropped, if any were. A task whose
   * dropped lines are not at the head of the queue gets that line on its own.
   */
  private flushSome(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    if ((this.queue.length === 0 && this.dropped.size === 0) || Date.now() < this.pausedUntil) return Promise.resolve();
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
    for (const e of this.queue.take(n)) lines.push(e.text);
    this.removed += n;
    this.inFlight = this.options
      .send({ ...(taskId ? { task_id: taskId } : {}), lines })
      .catch((e: unknown) => {
        // 404: a server without the logs route (or a task it no longer has); pause a minute.
        if (e instanceof ApiError && e.status === 404) this.pausedUntil = Date.now() + 60_000;
        if (Date.now() - this.lastSendWarning > 30_000) {
          this.lastSendWarning = Date.now();
          this.options.warn?.(`could not send ${lines.length} log lines (${e instanceof Error ? e.message : String(e)}); they are dropped, the task goes on`);
        }
      })
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }
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
