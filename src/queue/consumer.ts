import { dbOf } from "../db/client";
import { deadLetters } from "../db/schema";
import { backoffSeconds } from "../domain/backoff";
import { newId } from "../lib/crypto";
import { log } from "../lib/log";
import { applyCallbackRequests } from "./apply-callbacks";
import { type TeamEventsMessage, teamHub } from "../lib/team-stream";
import { failPending } from "../db/notifications";
import { attemptDelivery, type NotificationMessage, recordThrownAttempt } from "../notify/deliver";
import { retryDelaySeconds } from "../domain/notifications";
import type { CallbackMessage } from "./messages";

export { applyCallbackMessage } from "./apply-callbacks";

/** What a queue's messages are, from its name. */
export type QueueRole = "dead-letters" | "notifications" | "callbacks";

/**
 * The role of a queue by its name, as wrangler.toml names them: `switchboard-callbacks`,
 * `switchboard-notifications` and their `-dlq`s, `switchboard-preview-…` under [env.preview],
 * and each of those with `-pr-<N>` after it in a pull request's preview (scripts/preview-config.mjs).
 */
export function queueRole(queue: string): QueueRole {
  const name = queue.replace(/-pr-\d+$/, "");
  if (name.endsWith("-dlq")) return "dead-letters";
  if (name.endsWith("-notifications")) return "notifications";
  return "callbacks";
}

/**
 * Dispatches by queue. The notifications queue holds outgoing deliveries only, so a slow or
 * dead receiver holds up other deliveries at most, never agents' callbacks; the callbacks queue
 * has callbacks and team events (and deliveries queued there before notifications had a queue
 * of their own, still sent); dead-letter queues are kept in D1.
 */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env, _ctx?: ExecutionContext): Promise<void> {
  const role = queueRole(batch.queue);
  if (role === "dead-letters") {
    for (const message of batch.messages) {
      try {
        await keepDeadLetter(env, batch.queue, message);
        message.ack();
      } catch (error) {
        retry(batch.queue, message, error);
      }
    }
    return;
  }
  const callbacks: Message<unknown>[] = [];
  const notifications: { message: Message<unknown>; body: NotificationMessage }[] = [];
  const teamEvents: { message: Message<unknown>; body: TeamEventsMessage }[] = [];
  for (const message of batch.messages) {
    const body = message.body as CallbackMessage | TeamEventsMessage | NotificationMessage;
    if (body.kind === "notification") notifications.push({ message, body });
    else if (role === "notifications") {
      // Nothing else is sent there: retried on that queue's schedule, it ends in the dead-letter queue, kept in D1.
      retry(batch.queue, message, new Error(`a ${kindOf(message)} message on the notifications queue`), retryDelaySeconds(message.attempts, notifyBackoffCap(env)));
    } else if (body.kind === "team-events") teamEvents.push({ message, body });
    else callbacks.push(message);
  }
  // Independent kinds of work, run side by side: outgoing webhooks wait on receivers outside
  // our control (up to DELIVERY_TIMEOUT_MS each), and neither a session's callbacks nor the
  // team stream may wait behind them. Each settles its own messages (ack or retry).
  await Promise.all([applyCallbacks(env, batch.queue, callbacks), publishTeamEvents(env, batch.queue, teamEvents), deliverAll(env, batch.queue, notifications)]);
}

/** The whole batch is applied together (one call per hub), but acked message by message, so one failure redelivers only the requests it touched. */
async function applyCallbacks(env: Env, queue: string, callbacks: Message<unknown>[]): Promise<void> {
  if (callbacks.length === 0) return;
  try {
    const { failed, errors } = await applyCallbackRequests(env, callbacks.map((m) => m.body as CallbackMessage));
    callbacks.forEach((message, i) => (failed.has(i) ? retry(queue, message, errors[0]) : message.ack()));
  } catch (error) {
    // Settled here, not by the handler's rejection: the notifications beside them are acked on their own.
    for (const message of callbacks) retry(queue, message, error);
  }
}

/** Team events the hub could not take when they happened (src/lib/team-stream.ts): one at a time, in batch order, as the hub saw them. */
async function publishTeamEvents(env: Env, queue: string, items: { message: Message<unknown>; body: TeamEventsMessage }[]): Promise<void> {
  for (const { message, body } of items) {
    try {
      await teamHub(env, body.team_id).publish(body.team_id, body.events);
      message.ack();
    } catch (error) {
      retry(queue, message, error);
    }
  }
}

/**
 * A Worker invocation has six connections waiting for headers at most; more wait in line,
 * with their DELIVERY_TIMEOUT_MS already running. Four at a time gives each attempt its full
 * timeout: a notifications batch (10, wrangler.toml) to a host that never answers takes
 * 3 × 10 s, and a batch of 100 on the callbacks queue (deliveries queued there before
 * notifications had their own queue) 25 × 10 s, well within the consumer's 15 minutes, with
 * room for the callbacks' calls beside them.
 */
const DELIVERY_CONCURRENCY = 4;

/** The batch's deliveries, DELIVERY_CONCURRENCY at a time: one slow receiver does not hold up the others. */
async function deliverAll(env: Env, queue: string, items: { message: Message<unknown>; body: NotificationMessage }[]): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++] as (typeof items)[number];
      await deliverOne(env, queue, item.message, item.body);
    }
  };
  await Promise.allSettled(Array.from({ length: Math.min(DELIVERY_CONCURRENCY, items.length) }, lane));
}

/** One notification attempt: acked when it landed or gave up, else retried after a backoff (or the receiver's Retry-After). */
async function deliverOne(env: Env, queue: string, message: Message<unknown>, body: NotificationMessage): Promise<void> {
  const cap = notifyBackoffCap(env);
  try {
    const verdict = await attemptDelivery(env, body);
    if (verdict.status !== "retry") return message.ack();
    message.retry({ delaySeconds: retryDelaySeconds(message.attempts, cap, verdict.retryAfterSeconds) });
  } catch (error) {
    // The try is still counted, so a delivery whose sending keeps throwing ends `failed` after
    // its tries rather than staying pending; only when even that write fails does the message
    // go back to the queue (and, after max_retries, to the dead-letter queue, which fails it).
    let counted: Awaited<ReturnType<typeof recordThrownAttempt>>;
    try {
      counted = await recordThrownAttempt(env, body, error);
    } catch {
      return retry(queue, message, error, retryDelaySeconds(message.attempts, cap));
    }
    if (counted?.status !== "pending") return message.ack();
    retry(queue, message, error, retryDelaySeconds(counted.attempts, cap));
  }
}

/** The longest wait between two tries on the notifications queue (NOTIFY_MAX_BACKOFF_SECONDS). */
const notifyBackoffCap = (env: Env) => Number(env.NOTIFY_MAX_BACKOFF_SECONDS) || 300;

/** The tries a message gets on its queue before it is dead-lettered: `max_retries` (5, every consumer in wrangler.toml) + 1. */
export const QUEUE_TRIES = 6;

/** The kind a message names (callbacks, team-events, notification), for logs. */
function kindOf(message: Message<unknown>): string {
  const kind = (message.body as { kind?: unknown } | null)?.kind;
  return typeof kind === "string" ? kind : "unknown";
}

function retry(queue: string, message: Message<unknown>, error: unknown, delaySeconds = backoffSeconds(message.attempts)): void {
  const kind = kindOf(message);
  log("warn", `${kind} message failed; retrying`, { queue, kind, message_id: message.id, attempts: message.attempts, delay_s: delaySeconds, error: error instanceof Error ? error.message : String(error) });
  message.retry({ delaySeconds });
}

/**
 * A message that failed every try on its queue, kept in D1. `attempts` is those tries
 * (QUEUE_TRIES): the dead-letter queue hands it over as its own first delivery, so the
 * message's count here says nothing about them. A notification's delivery ends `failed`
 * in the same batch: otherwise it would stay pending and the cron would queue it again.
 */
async function keepDeadLetter(env: Env, queue: string, message: Message<unknown>): Promise<void> {
  const body = message.body as Partial<CallbackMessage> | Partial<NotificationMessage>;
  const db = dbOf(env);
  const now = new Date().toISOString();
  const kept = db
    .insert(deadLetters)
    .values({ id: newId("dl"), teamId: body.team_id ?? "unknown", queue, messageId: message.id, body: message.body as object, attempts: QUEUE_TRIES, receivedAt: now })
    .onConflictDoNothing();
  const delivery = body.kind === "notification" && typeof body.team_id === "string" && "delivery_id" in body && typeof body.delivery_id === "string" ? { teamId: body.team_id, id: body.delivery_id } : undefined;
  if (delivery) await db.batch([kept, failPending(db, { ...delivery, reason: `not sent: its queue message failed all ${QUEUE_TRIES} tries and was dead-lettered`, now })]);
  else await kept;
  log("error", `${kindOf(message)} message dead-lettered`, { queue, kind: kindOf(message), message_id: message.id, team_id: body.team_id, ...(delivery ? { delivery_id: delivery.id } : {}) });
}
