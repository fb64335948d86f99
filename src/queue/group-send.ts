/** Cloudflare Queues' limits for one sendBatch call. */
export const MAX_BATCH_MESSAGES = 100;
export const MAX_BATCH_BYTES = 256 * 1024;
/**
 * A batch the queue has not confirmed after this long fails for the requests in it (they
 * answer with an error and the client retries; events are applied once per id, so a message
 * that did go out is not applied twice). Only a send that hangs gets there.
 */
const SEND_TIMEOUT_MS = 10_000;
/** A waiting request looks again after 1 ms, then 2, 4, at most every 8 ms. */
const MAX_POLL_MS = 8;

interface Waiting<T> {
  body: T;
  bytes: number;
  /** In a batch being sent. */
  taken: boolean;
  settled: boolean;
  error?: unknown;
}

/**
 * Group commit for a queue producer: messages from requests running at the same time in
 * one isolate go out in one `sendBatch` instead of one `send` each.
 *
 * No request waits to fill a batch: with nothing in flight a message is sent at once.
 * While a batch is in flight, new messages wait for it to end; then the first waiting request
 * to look sends everything that has gathered. Each request answers only after the batch
 * holding its message was accepted by the queue, so a 202 still means "queued".
 *
 * Every request waits on its own timers and sends from its own context, never on a promise
 * another request resolves: workerd then runs the rest of the waiting request in the other's
 * context, and its response fails ("Cannot perform I/O on behalf of a different request";
 * measured under wrangler dev with a promise of the leader's, with one derived from it, and
 * with one of the waiter's own that the leader resolved: the last failed only under load).
 */
export class GroupSender<T> {
  private waiting: Waiting<T>[] = [];
  private sending = false;
  private sendingSince = 0;
  /** Which send `sending` is about: a send given up on must not clear a later one's flag. */
  private generation = 0;

  constructor(
    private readonly sendBatch: (bodies: T[]) => Promise<void>,
    private readonly timeoutMs = SEND_TIMEOUT_MS,
  ) {}

  /** Resolves once the queue accepted the message; rejects with the queue's error. */
  async send(body: T, bytes: number, waitUntil?: (p: Promise<unknown>) => void): Promise<void> {
    const me: Waiting<T> = { body, bytes, taken: false, settled: false };
    this.waiting.push(me);
    let pause = 1;
    while (!me.settled) {
      // A send whose request died without settling it (its timeout is a timer of that
      // request) must not hold up every later request of this isolate.
      if (this.sending && Date.now() - this.sendingSince > this.timeoutMs + 1_000) {
        this.sending = false;
        if (me.taken) throw new Error("The queue did not confirm the batch in time.");
      }
      if (!this.sending) {
        const taken = this.waiting;
        this.waiting = [];
        for (const w of taken) w.taken = true;
        this.sending = true;
        this.sendingSince = Date.now();
        const generation = ++this.generation;
        const sent = this.sendAll(taken).finally(() => {
          if (this.generation === generation) this.sending = false;
        });
        waitUntil?.(sent);
        await sent;
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, MAX_POLL_MS);
    }
    if (me.error !== undefined) throw me.error;
  }

  /**
   * Sends in chunks within the batch limits, all at once. Never rejects and always settles
   * within the timeout: each message keeps its own outcome, and the requests waiting on a
   * send that hangs get an error rather than holding up every later request of the isolate.
   */
  private async sendAll(taken: Waiting<T>[]): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("The queue did not confirm the batch in time.")), this.timeoutMs)));
    await Promise.all(
      chunkByLimits(taken).map(async (chunk) => {
        let error: unknown;
        try {
          await Promise.race([this.sendBatch(chunk.map((w) => w.body)), timeout]);
        } catch (e) {
          error = e ?? new Error("queue send failed");
        }
        for (const w of chunk) {
          w.settled = true;
          w.error = error;
        }
      }),
    );
    clearTimeout(timer);
  }
}

/** Splits messages, in order, into runs of at most MAX_BATCH_MESSAGES and MAX_BATCH_BYTES. */
export function chunkByLimits<W extends { bytes: number }>(items: W[]): W[][] {
  const chunks: W[][] = [];
  let current: W[] = [];
  let bytes = 0;
  for (const item of items) {
    if (current.length > 0 && (current.length >= MAX_BATCH_MESSAGES || bytes + item.bytes > MAX_BATCH_BYTES)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
