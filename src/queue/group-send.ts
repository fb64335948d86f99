/** Cloudflare Queues' limits for one sendBatch call. */
export const MAX_BATCH_MESSAGES = 100;
export const MAX_BATCH_BYTES = 256 * 1024;
/**
 * A batch the queue has not confirmed after this long fails for the requests in it (they
 * answer with an error and the client retries; events are applied once per id, so a message
 * that did go out is not applied twice). Only a send that hangs gets there.
 */
const SEND_TIMEOUT_MS = 10_000;

interface Waiting<T> {
  body: T;
  bytes: number;
  settled: boolean;
  error?: unknown;
}

/**
 * Group commit for a queue producer: messages from requests running at the same time in
 * one isolate go out in one `sendBatch` instead of one `send` each.
 *
 * No request waits to fill a batch: with nothing in flight a message is sent at once.
 * While a batch is in flight, new messages wait for it to settle; then one of the waiting
 * requests sends everything that has gathered, and the others wait on that. Each request
 * answers only after the batch holding its message was accepted by the queue, so a 202 still
 * means "queued". A batch is sent from the context of a request whose own message is in it
 * (and kept alive with waitUntil), never from a request that already answered.
 *
 * Measured under wrangler dev: every send is a request to the queue's broker, and with 32
 * agents posting, grouping cut the runtime's CPU per accepted callback (bench/RESULTS.md).
 */
export class GroupSender<T> {
  private waiting: Waiting<T>[] = [];
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly sendBatch: (bodies: T[]) => Promise<void>,
    private readonly timeoutMs = SEND_TIMEOUT_MS,
  ) {}

  /** Resolves once the queue accepted the message; rejects with the queue's error. */
  async send(body: T, bytes: number, waitUntil?: (p: Promise<unknown>) => void): Promise<void> {
    const me: Waiting<T> = { body, bytes, settled: false };
    this.waiting.push(me);
    while (!me.settled) {
      if (!this.inFlight) {
        const taken = this.waiting;
        this.waiting = [];
        const sending: Promise<void> = this.sendAll(taken).then(() => {
          this.inFlight = null;
        });
        this.inFlight = sending;
        waitUntil?.(sending);
      }
      // A promise made here with its own resolver: resolved from the leader's request, workerd
      // runs what follows in this request's context. Awaiting the leader's promise, or one
      // derived from it with then(), ran the rest of this request in the leader's context and
      // its response failed ("Cannot perform I/O on behalf of a different request"; measured
      // under wrangler dev; test/node/callbacks-concurrent.test.ts covers it).
      const current = this.inFlight as Promise<void>;
      await new Promise<void>((resolve) => void current.then(resolve));
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
