import { dbOf } from "../db/client";
import { deadLetters } from "../db/schema";
import { backoffSeconds } from "../domain/backoff";
import { newId } from "../lib/crypto";
import { log } from "../lib/log";
import { applyCallbackRequests } from "./apply-callbacks";
import { type TeamEventsMessage, teamHub } from "../lib/team-stream";
import type { CallbackMessage } from "./messages";

export { applyCallbackMessage } from "./apply-callbacks";

/** Dispatches by queue: callbacks are applied; the dead-letter queue is kept in D1. */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env, _ctx?: ExecutionContext): Promise<void> {
  if (batch.queue.endsWith("-dlq")) {
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
  // Team events the hub could not take when they happened (src/lib/team-stream.ts).
  const callbacks: Message<unknown>[] = [];
  for (const message of batch.messages) {
    const body = message.body as CallbackMessage | TeamEventsMessage;
    if (body.kind !== "team-events") {
      callbacks.push(message);
      continue;
    }
    try {
      await teamHub(env, body.team_id).publish(body.team_id, body.events);
      message.ack();
    } catch (error) {
      retry(batch.queue, message, error);
    }
  }
  if (callbacks.length === 0) return;
  // The whole batch is applied together (one call per hub), but acked message by message,
  // so one failure redelivers only the requests it touched.
  const { failed, errors } = await applyCallbackRequests(env, callbacks.map((m) => m.body as CallbackMessage));
  callbacks.forEach((message, i) => (failed.has(i) ? retry(batch.queue, message, errors[0]) : message.ack()));
}

function retry(queue: string, message: Message<unknown>, error: unknown): void {
  const delaySeconds = backoffSeconds(message.attempts);
  log("warn", "callback message failed; retrying", { queue, message_id: message.id, attempts: message.attempts, delay_s: delaySeconds, error: error instanceof Error ? error.message : String(error) });
  message.retry({ delaySeconds });
}

async function keepDeadLetter(env: Env, queue: string, message: Message<unknown>): Promise<void> {
  const body = message.body as Partial<CallbackMessage>;
  await dbOf(env)
    .insert(deadLetters)
    .values({ id: newId("dl"), teamId: body.team_id ?? "unknown", queue, messageId: message.id, body: message.body as object, attempts: message.attempts, receivedAt: new Date().toISOString() })
    .onConflictDoNothing();
  log("error", "callback message dead-lettered", { queue, message_id: message.id, team_id: body.team_id });
}
