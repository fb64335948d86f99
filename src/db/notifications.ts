import { and, desc, eq, lt, or, sql } from "drizzle-orm";
import type { Db } from "./client";
import { notificationChannels, notificationDeliveries } from "./schema";

/** The statements of outgoing notifications: channels, and one delivery per channel and event. */

export type ChannelRow = typeof notificationChannels.$inferSelect;
export type DeliveryRow = typeof notificationDeliveries.$inferSelect;

export function listChannels(db: Db, teamId: string) {
  return db.select().from(notificationChannels).where(eq(notificationChannels.teamId, teamId)).orderBy(notificationChannels.createdAt, notificationChannels.id).all();
}

export function findChannel(db: Db, teamId: string, id: string) {
  return db
    .select()
    .from(notificationChannels)
    .where(and(eq(notificationChannels.teamId, teamId), eq(notificationChannels.id, id)))
    .get();
}

/**
 * Inserts a channel unless the team would then have more than `max`: the insert and a delete
 * of the new row when the count went over run as one D1 batch (a transaction, and D1 runs one
 * at a time), so concurrent creates can never pass the limit, as a count read first could.
 * Undefined: the team was full, and nothing changed.
 */
export async function insertChannelWithin(db: Db, row: typeof notificationChannels.$inferInsert, max: number): Promise<ChannelRow | undefined> {
  const [inserted, undone] = await db.batch([
    db.insert(notificationChannels).values(row).returning(),
    db
      .delete(notificationChannels)
      .where(
        and(
          eq(notificationChannels.teamId, row.teamId),
          eq(notificationChannels.id, row.id),
          sql`(SELECT count(*) FROM ${notificationChannels} c WHERE c.team_id = ${row.teamId}) > ${max}`,
        ),
      )
      .returning({ id: notificationChannels.id }),
  ]);
  return undone.length > 0 ? undefined : inserted[0];
}

/** Deletes a channel and its deliveries' history together. */
export async function deleteChannel(db: Db, teamId: string, id: string): Promise<boolean> {
  const [deleted] = await db.batch([
    db
      .delete(notificationChannels)
      .where(and(eq(notificationChannels.teamId, teamId), eq(notificationChannels.id, id)))
      .returning({ id: notificationChannels.id }),
    db.delete(notificationDeliveries).where(and(eq(notificationDeliveries.teamId, teamId), eq(notificationDeliveries.channelId, id))),
  ]);
  return deleted.length > 0;
}

/** Inserts the deliveries not made before (one per channel and event); returns those inserted. */
export async function insertDeliveries(db: Db, rows: (typeof notificationDeliveries.$inferInsert)[]): Promise<{ id: string }[]> {
  if (rows.length === 0) return [];
  // Seven rows a statement: 13 columns each stay under D1's 100 bound parameters.
  const statements = [];
  for (let i = 0; i < rows.length; i += 7) statements.push(db.insert(notificationDeliveries).values(rows.slice(i, i + 7)).onConflictDoNothing().returning({ id: notificationDeliveries.id }));
  const [first, ...rest] = statements;
  if (!first) return [];
  const results = await db.batch([first, ...rest]);
  return results.flat();
}

export function findDelivery(db: Db, teamId: string, id: string) {
  return db
    .select()
    .from(notificationDeliveries)
    .where(and(eq(notificationDeliveries.teamId, teamId), eq(notificationDeliveries.id, id)))
    .get();
}

/** Records one attempt; only a pending delivery changes (a late duplicate message changes nothing). */
export function recordAttempt(db: Db, d: { teamId: string; id: string; status: string; attempts: number; statusCode: number | null; error: string | null; now: string }) {
  return db
    .update(notificationDeliveries)
    .set({ status: d.status, attempts: d.attempts, lastStatusCode: d.statusCode, lastError: d.error, updatedAt: d.now, ...(d.status === "delivered" ? { deliveredAt: d.now } : {}) })
    .where(and(eq(notificationDeliveries.teamId, d.teamId), eq(notificationDeliveries.id, d.id), eq(notificationDeliveries.status, "pending")));
}

/** A channel's deliveries, newest first, after the cursor `[created_at, id]`. */
export function listDeliveries(db: Db, teamId: string, channelId: string, limit: number, after: [string, string] | null) {
  return db
    .select()
    .from(notificationDeliveries)
    .where(
      and(
        eq(notificationDeliveries.teamId, teamId),
        eq(notificationDeliveries.channelId, channelId),
        after ? or(lt(notificationDeliveries.createdAt, after[0]), and(eq(notificationDeliveries.createdAt, after[0]), lt(notificationDeliveries.id, after[1]))) : undefined,
      ),
    )
    .orderBy(desc(notificationDeliveries.createdAt), desc(notificationDeliveries.id))
    .limit(limit)
    .all();
}

/**
 * Counts a try that threw before `recordAttempt` (the consumer's fallback): attempts + 1,
 * `failed` once they reach `max`. One statement over plain columns, so a row whose event no
 * longer parses is still counted. Undefined when nothing pending matched.
 */
export function countTry(db: Db, d: { teamId: string; id: string; reason: string; max: number; now: string }) {
  const spent = sql`${notificationDeliveries.attempts} + 1 >= ${d.max}`;
  return db
    .update(notificationDeliveries)
    .set({
      attempts: sql`${notificationDeliveries.attempts} + 1`,
      status: sql`CASE WHEN ${spent} THEN 'failed' ELSE 'pending' END`,
      lastStatusCode: null,
      lastError: sql`CASE WHEN ${spent} THEN ${d.reason} || '; gave up after ' || (${notificationDeliveries.attempts} + 1) || ' attempts' ELSE ${d.reason} END`,
      updatedAt: d.now,
    })
    .where(and(eq(notificationDeliveries.teamId, d.teamId), eq(notificationDeliveries.id, d.id), eq(notificationDeliveries.status, "pending")))
    .returning({ status: notificationDeliveries.status, attempts: notificationDeliveries.attempts })
    .get();
}

/** Ends a pending delivery as `failed` with the reason, its tries as counted. */
export function failPending(db: Db, d: { teamId: string; id: string; reason: string; now: string }) {
  return db
    .update(notificationDeliveries)
    .set({ status: "failed", lastError: d.reason, updatedAt: d.now })
    .where(and(eq(notificationDeliveries.teamId, d.teamId), eq(notificationDeliveries.id, d.id), eq(notificationDeliveries.status, "pending")));
}
