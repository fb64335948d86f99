import { and, eq, gte, lt, sql } from "drizzle-orm";
import { dbOf } from "../db/client";
import { type ChannelRow, countTry, type DeliveryRow, findChannel, findDelivery, insertDeliveries, listChannels, recordAttempt } from "../db/notifications";
import { notificationDeliveries } from "../db/schema";
import { type AttemptVerdict, DELIVERY_TIMEOUT_MS, type Format, isNotifiable, judgeAttempt, MAX_DELIVERY_ATTEMPTS, type NotifiedEvent, renderBody } from "../domain/notifications";
import type { TeamEvent } from "../domain/team-events";
import { decryptSecret, newId, secretsKeyProblem } from "../lib/crypto";
import { log } from "../lib/log";
import { signPayload } from "../lib/standard-webhooks";

/** A queue message: deliver one delivery row (the row has the event; the channel the URL). */
export interface NotificationMessage {
  kind: "notification";
  team_id: string;
  delivery_id: string;
}

/** The context a channel's secrets are encrypted under: a ciphertext moved to another channel does not decrypt. */
export const channelSecretContext = (teamId: string, channelId: string, field: "url" | "signing_secret") => `${teamId}:notification:${channelId}:${field}`;

/**
 * Makes one delivery per channel that wants each event, and queues them. A delivery exists
 * at most once per channel and event, so an event published twice notifies once.
 */
export async function queueDeliveries(env: Env, teamId: string, events: NotifiedEvent[], onlyChannel?: string): Promise<string[]> {
  const wanted = events.filter((e) => onlyChannel !== undefined || isNotifiable(e.type));
  if (wanted.length === 0) return [];
  const db = dbOf(env);
  const channels = (await listChannels(db, teamId)).filter((ch) => (onlyChannel === undefined ? true : ch.id === onlyChannel));
  const now = new Date().toISOString();
  const rows = channels.flatMap((ch) =>
    wanted
      .filter((e) => onlyChannel !== undefined || ch.events.includes(e.type))
      .map((e) => ({ teamId, id: newId("ndl"), channelId: ch.id, eventId: e.id, eventType: e.type, event: e as unknown as Record<string, unknown>, status: "pending", attempts: 0, createdAt: now, updatedAt: now })),
  );
  const inserted = await insertDeliveries(db, rows);
  await sendMessages(env, teamId, inserted.map((r) => r.id));
  return inserted.map((r) => r.id);
}

/** To the notifications queue, not the callbacks queue: deliveries wait on receivers, callbacks must not wait on them. */
async function sendMessages(env: Env, teamId: string, ids: string[]): Promise<void> {
  // sendBatch takes at most 100 messages.
  for (let i = 0; i < ids.length; i += 100) {
    await env.NOTIFICATIONS.sendBatch(ids.slice(i, i + 100).map((id) => ({ body: { kind: "notification", team_id: teamId, delivery_id: id } satisfies NotificationMessage })));
  }
}

/** For publishTeamEvents: notifications must never fail the change that caused them. */
export async function queueNotifications(env: Env, teamId: string, events: TeamEvent[]): Promise<void> {
  if (!events.some((e) => isNotifiable(e.type))) return;
  try {
    await queueDeliveries(env, teamId, events);
  } catch (error) {
    // Rows inserted before the failure stay pending; the cron queues them again.
    log("error", "notifications not queued", { team_id: teamId, types: events.map((e) => e.type), error: error instanceof Error ? error.message : String(error) });
  }
}

/** One attempt at a delivery; the verdict says whether the queue should try again. */
export async function attemptDelivery(env: Env, message: NotificationMessage): Promise<AttemptVerdict | { status: "gone" } | { status: "deferred" }> {
  // No usable SECRETS_KEY is the deployment's fault, not the channel's: no URL can be read, so
  // no try is made or counted. The message is acked and the delivery left pending and
  // untouched, which the cron re-queues every STALLED_AFTER_MS until the key is set again.
  const keyProblem = secretsKeyProblem(env.SECRETS_KEY);
  if (keyProblem) {
    log("error", "notification deferred", { team_id: message.team_id, delivery_id: message.delivery_id, reason: keyProblem });
    return { status: "deferred" };
  }
  const db = dbOf(env);
  const teamId = message.team_id;
  const delivery = await findDelivery(db, teamId, message.delivery_id);
  if (!delivery || delivery.status !== "pending") return { status: "gone" };
  const channel = await findChannel(db, teamId, delivery.channelId);
  if (!channel) return { status: "gone" };
  const attempt = delivery.attempts + 1;
  let verdict: AttemptVerdict;
  let statusCode: number | null = null;
  let url: string | undefined;
  try {
    const request = await prepareRequest(env, teamId, channel, delivery);
    url = request.url;
    const res = await fetch(request.url, { method: "POST", headers: request.headers, body: request.body, redirect: "manual", signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS) });
    statusCode = res.status;
    await res.body?.cancel();
    verdict = judgeAttempt({ status: res.status, retryAfter: res.headers.get("Retry-After") }, attempt);
  } catch (error) {
    // A try that could not even be made (the URL no longer decrypts: SECRETS_KEY rotated, or a
    // damaged row) is counted like one without an answer: retried, then failed, with its reason.
    verdict = judgeAttempt({ error: url === undefined ? unsentReason(error) : connectReason(error, url) }, attempt);
  }
  const now = new Date().toISOString();
  await recordAttempt(db, { teamId, id: delivery.id, status: verdict.status === "retry" ? "pending" : verdict.status, attempts: attempt, statusCode, error: verdict.status === "delivered" ? null : verdict.reason, now });
  if (verdict.status === "failed") log("warn", "notification failed", { team_id: teamId, delivery_id: delivery.id, channel_id: channel.id, reason: verdict.reason });
  return verdict;
}

/** Why a try was not made, in words safe to store and show: never the URL, a secret or a library's message. */
class UnsentError extends Error {}

/** The request for a delivery: its URL (decrypted), body and headers (signed when the channel is). */
async function prepareRequest(env: Env, teamId: string, channel: ChannelRow, delivery: DeliveryRow): Promise<{ url: string; headers: Record<string, string>; body: string }> {
  const url = await decryptSecret(env.SECRETS_KEY, channel.url, channelSecretContext(teamId, channel.id, "url")).catch(() => {
    throw new UnsentError("the channel's URL could not be decrypted (SECRETS_KEY changed, or the stored value is damaged)");
  });
  const body = JSON.stringify(renderBody(channel.format as Format, delivery.event as unknown as NotifiedEvent, teamId));
  const headers: Record<string, string> = { "Content-Type": "application/json", "User-Agent": "Switchboard-Notifications/1" };
  if (channel.signingSecret) {
    // Standard Webhooks, as Switchboard's own callbacks are signed: the delivery id is stable across retries.
    const secret = await decryptSecret(env.SECRETS_KEY, channel.signingSecret, channelSecretContext(teamId, channel.id, "signing_secret")).catch(() => {
      throw new UnsentError("the channel's signing secret could not be decrypted (SECRETS_KEY changed, or the stored value is damaged)");
    });
    const timestamp = Math.floor(Date.now() / 1000);
    Object.assign(headers, { "webhook-id": delivery.id, "webhook-timestamp": String(timestamp), "webhook-signature": await signPayload(secret, delivery.id, timestamp, body) });
  }
  return { url, headers, body };
}

function unsentReason(error: unknown): string {
  if (error instanceof UnsentError) return error.message;
  // Only the error's kind: its message may quote what it was working on.
  return `the message could not be prepared (${error instanceof Error ? error.name : typeof error})`;
}

/** Why a fetch threw; the URL (a credential for Slack and Discord) is cut out should the runtime quote it. */
function connectReason(error: unknown, url: string): string {
  if (error instanceof Error && error.name === "TimeoutError") return `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s`;
  let text = error instanceof Error ? error.message : String(error);
  const host = URL.canParse(url) ? new URL(url).host : "";
  for (const secret of [url, host]) if (secret) text = text.split(secret).join("…");
  return `could not connect: ${text}`;
}

/**
 * For the consumer when an attempt threw before its try was recorded (a damaged row, a bug):
 * the try is counted here, in one statement that reads nothing it could fail to parse, and the
 * delivery is failed once its tries are used up. Undefined: nothing pending to count (gone, or ended).
 */
export async function recordThrownAttempt(env: Env, message: NotificationMessage, error: unknown): Promise<{ status: string; attempts: number } | undefined> {
  const reason = `the try failed before it was recorded (${error instanceof Error ? error.name : typeof error})`;
  const row = await countTry(dbOf(env), { teamId: message.team_id, id: message.delivery_id, reason, max: MAX_DELIVERY_ATTEMPTS, now: new Date().toISOString() });
  if (row?.status === "failed") log("warn", "notification failed", { team_id: message.team_id, delivery_id: message.delivery_id, reason });
  return row;
}

/** Deliveries left pending and untouched this long lost their message (a queue send failed): queued again. */
const STALLED_AFTER_MS = 15 * 60 * 1000;

/**
 * The cron's safety net for deliveries whose queue message never went out (or was
 * dead-lettered before its delivery could be marked failed): queued again while they have
 * tries left; with their tries used up they are failed instead, so none is sent forever.
 */
export async function requeueStalled(env: Env, now = Date.now()): Promise<number> {
  const db = dbOf(env);
  const before = new Date(now - STALLED_AFTER_MS).toISOString();
  const at = new Date(now).toISOString();
  const stale = and(eq(notificationDeliveries.status, "pending"), lt(notificationDeliveries.updatedAt, before));
  const [, stalled] = await db.batch([
    db
      .update(notificationDeliveries)
      .set({ status: "failed", lastError: sql`COALESCE(${notificationDeliveries.lastError} || '; ', '') || 'gave up after ' || ${notificationDeliveries.attempts} || ' attempts'`, updatedAt: at })
      .where(and(stale, gte(notificationDeliveries.attempts, MAX_DELIVERY_ATTEMPTS))),
    db
      .update(notificationDeliveries)
      .set({ updatedAt: at })
      .where(and(stale, lt(notificationDeliveries.attempts, MAX_DELIVERY_ATTEMPTS)))
      .returning({ teamId: notificationDeliveries.teamId, id: notificationDeliveries.id }),
  ]);
  const byTeam = new Map<string, string[]>();
  for (const d of stalled) byTeam.set(d.teamId, [...(byTeam.get(d.teamId) ?? []), d.id]);
  for (const [team, ids] of byTeam) await sendMessages(env, team, ids);
  return stalled.length;
}

/** Delivered and failed deliveries are kept this long, for people to see what was sent. */
export const DELIVERY_RETENTION_DAYS = 30;

/** The cron: forgets ended deliveries past retention, 5,000 a run at most. */
export async function expireDeliveries(env: Env, now = Date.now()): Promise<number> {
  const before = new Date(now - DELIVERY_RETENTION_DAYS * 86_400_000).toISOString();
  const result = await env.DB.prepare(
    `DELETE FROM notification_deliveries WHERE rowid IN (SELECT rowid FROM notification_deliveries WHERE status IN ('delivered', 'failed') AND updated_at < ? LIMIT 5000)`,
  )
    .bind(before)
    .run();
  return result.meta.changes ?? 0;
}
