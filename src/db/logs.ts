import { and, asc, desc, eq, gte, lt, sql } from "drizzle-orm";
import type { Db } from "./client";
import { logBatches } from "./schema";

/** The index of worker log batches (the lines are in R2; src/routes/logs.ts). */

export type LogBatchRow = typeof logBatches.$inferSelect;

/** Whose logs a read wants: a worker's (optionally of one task), or a task's. */
export type LogView = { teamId: string; workerId: string; taskId?: string | undefined } | { teamId: string; workerId?: undefined; taskId: string };

/**
 * Indexes a batch already stored in R2 and returns its seq: max(the team's last seq + 1,
 * `nowMs`), taken in the insert itself, so concurrent batches get increasing seqs in the
 * order they become visible.
 */
export async function insertLogBatch(db: Db, b: Omit<LogBatchRow, "seq"> & { nowMs: number }): Promise<number> {
  const [row] = await db
    .insert(logBatches)
    .select(
      sql`SELECT ${b.teamId}, max(coalesce(max(l.seq) + 1, 0), CAST(${b.nowMs} AS INTEGER)), ${b.id}, ${b.workerId}, ${b.taskId}, ${b.r2Key}, ${b.lineCount}, ${b.bytes}, ${b.createdAt}
          FROM log_batches l WHERE l.team_id = ${b.teamId}`,
    )
    .returning({ seq: logBatches.seq });
  if (!row) throw new Error("a log batch insert returned no row");
  return row.seq;
}

function inView(v: LogView) {
  return and(eq(logBatches.teamId, v.teamId), v.workerId === undefined ? undefined : eq(logBatches.workerId, v.workerId), v.taskId === undefined ? undefined : eq(logBatches.taskId, v.taskId));
}

/** The view's newest `limit` batches, newest first. */
export function latestBatches(db: Db, v: LogView, limit: number) {
  return db.select().from(logBatches).where(inView(v)).orderBy(desc(logBatches.seq)).limit(limit).all();
}

/** The view's batches from `seq` on (inclusive), oldest first. */
export function batchesFrom(db: Db, v: LogView, seq: number, limit: number) {
  return db
    .select()
    .from(logBatches)
    .where(and(inView(v), gte(logBatches.seq, seq)))
    .orderBy(asc(logBatches.seq))
    .limit(limit)
    .all();
}

/** Whether the worker has any batch in the team. */
export async function hasLogs(db: Db, teamId: string, workerId: string): Promise<boolean> {
  const row = await db
    .select({ seq: logBatches.seq })
    .from(logBatches)
    .where(and(eq(logBatches.teamId, teamId), eq(logBatches.workerId, workerId)))
    .limit(1)
    .get();
  return row !== undefined;
}

const sweepOrder = [asc(logBatches.createdAt), asc(logBatches.teamId), asc(logBatches.seq)];

/** Up to `limit` batches, of all teams, created before `before`, oldest first (log_batches_created's order). */
export function oldLogBatches(db: Db, before: string, limit: number) {
  return db
    .select({ teamId: logBatches.teamId, seq: logBatches.seq, createdAt: logBatches.createdAt, r2Key: logBatches.r2Key })
    .from(logBatches)
    .where(lt(logBatches.createdAt, before))
    .orderBy(...sweepOrder)
    .limit(limit)
    .all();
}

/**
 * Deletes the batches created before `before` up to and including `last` in oldLogBatches'
 * order: exactly those that call returned (newer rows cannot slip in below `last`), even if
 * another sweep deleted some of them meanwhile.
 */
export function deleteLogBatchesThrough(db: Db, before: string, last: { createdAt: string; teamId: string; seq: number }) {
  return db
    .delete(logBatches)
    .where(and(lt(logBatches.createdAt, before), sql`(${logBatches.createdAt}, ${logBatches.teamId}, ${logBatches.seq}) <= (${last.createdAt}, ${last.teamId}, ${last.seq})`));
}
