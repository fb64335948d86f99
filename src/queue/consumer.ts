import type { SessionSummary } from "../../durable-objects/session-hub";
import { dbOf } from "../db/client";
import { indexTopic, upsertSessionRow } from "../db/index-rows";
import { deadLetters } from "../db/schema";
import { backoffSeconds } from "../domain/backoff";
import { type AgentEvent, dataOf, isSessionLevel } from "../domain/events";
import { newId } from "../lib/crypto";
import { sessionHub, topicHub } from "../lib/hubs";
import { log } from "../lib/log";
import type { CallbackMessage } from "./messages";

/** Dispatches by queue: callbacks are applied; the dead-letter queue is kept in D1. */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env, _ctx?: ExecutionContext): Promise<void> {
  const isDeadLetters = batch.queue.endsWith("-dlq");
  // Messages are acked one by one, so one failure does not redeliver the whole batch.
  for (const message of batch.messages) {
    try {
      if (isDeadLetters) await keepDeadLetter(env, batch.queue, message);
      else await applyCallbackMessage(env, message.body as CallbackMessage);
      message.ack();
    } catch (error) {
      const delaySeconds = backoffSeconds(message.attempts);
      log("warn", "callback message failed; retrying", { queue: batch.queue, message_id: message.id, attempts: message.attempts, delay_s: delaySeconds, error: error instanceof Error ? error.message : String(error) });
      message.retry({ delaySeconds });
    }
  }
}

/**
 * Applies one callback request: the events of each hub in the order given, each exactly
 * once (the hubs dedupe by event id), then the D1 index rows. A redelivered message applies
 * nothing again but still rewrites the index, so a crash between the two heals itself.
 */
export async function applyCallbackMessage(env: Env, message: CallbackMessage): Promise<void> {
  const team = message.team_id;
  const events = "events" in message ? message.events : await loadOversized(env, message.r2_key);
  const db = dbOf(env);

  const bySession = new Map<string, AgentEvent[]>();
  const byTopic = new Map<string, { session: string; topic: string; events: AgentEvent[] }>();
  for (const event of events) {
    if (isSessionLevel(event.type)) {
      bySession.set(event.session_id, [...(bySession.get(event.session_id) ?? []), event]);
    } else {
      const key = `${event.session_id}\u0000${event.topic_id}`;
      const group = byTopic.get(key) ?? { session: event.session_id, topic: event.topic_id as string, events: [] };
      group.events.push(event);
      byTopic.set(key, group);
    }
  }

  for (const [sessionId, sessionEvents] of bySession) {
    const report = await sessionHub(env, team, sessionId).apply(sessionEvents);
    await upsertSessionRow(db, team, report.summary, report.version);
    // topic_added creates the topic: its hub and its index row.
    for (const event of sessionEvents) {
      if (event.type !== "topic_added") continue;
      const data = dataOf({ ...event, type: "topic_added" });
      const topic = await topicHub(env, team, sessionId, data.topic_id).ensure({ id: data.topic_id, session_id: sessionId, team_id: team, hypothesis: data.hypothesis ?? null });
      await indexTopic(db, team, sessionId, topic.summary, topic.version);
    }
  }

  for (const group of byTopic.values()) {
    const init = { id: group.topic, session_id: group.session, team_id: team };
    const report = await topicHub(env, team, group.session, group.topic).apply(init, group.events);
    await indexTopic(db, team, group.session, report.summary, report.version);
    const rejected = report.results.flatMap((r) => (r.status === "rejected" ? [{ event_id: r.event_id, type: group.events.find((e) => e.id === r.event_id)?.type ?? "unknown", reason: r.reason }] : []));
    if (rejected.length > 0) await sessionHub(env, team, group.session).recordRejected(rejected);
  }

  if ("r2_key" in message) await env.BUCKET.delete(message.r2_key);
}

async function loadOversized(env: Env, key: string): Promise<AgentEvent[]> {
  const object = await env.BUCKET.get(key);
  // Already applied and deleted by an earlier delivery of this message: nothing left to do.
  if (!object) return [];
  return (await object.json()) as AgentEvent[];
}

async function keepDeadLetter(env: Env, queue: string, message: Message<unknown>): Promise<void> {
  const body = message.body as Partial<CallbackMessage>;
  await dbOf(env)
    .insert(deadLetters)
    .values({ id: newId("dl"), teamId: body.team_id ?? "unknown", queue, messageId: message.id, body: message.body as object, attempts: message.attempts, receivedAt: new Date().toISOString() })
    .onConflictDoNothing();
  log("error", "callback message dead-lettered", { queue, message_id: message.id, team_id: body.team_id });
}
