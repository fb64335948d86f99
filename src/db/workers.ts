import { and, asc, eq, gt, inArray, lt, ne, sql } from "drizzle-orm";
import type { WorkerStatus } from "../domain/workers";
import { USD_DECIMALS } from "../domain/money";
import type { Db } from "./client";
import { LEASED_LIST, underLease } from "./tasks";
import { tasks, workers } from "./schema";

/** The workers' statements: a worker's row is upserted by whatever it does (heartbeat, claim). */

export type WorkerRow = typeof workers.$inferSelect;

/** Records what a worker says it is doing, and that it was seen now (creating its row on first sight). */
export function upsertWorker(db: Db, w: { teamId: string; id: string; role: string; status: WorkerStatus; currentTask: string | null; now: string }) {
  const set = { role: w.role, status: w.status, currentTask: w.currentTask, lastSeenAt: w.now };
  return db
    .insert(workers)
    .values({ teamId: w.teamId, id: w.id, ...set, createdAt: w.now })
    .onConflictDoUpdate({ target: [workers.teamId, workers.id], set });
}

/**
 * Records the worker of the task just claimed under `leaseId` as working on it (creating its
 * row if it never heart-beat). It reads the claim's own row, so it can follow the claim in the
 * same batch: a claimed task never lacks its worker; with no claim it changes nothing. The
 * lookup is one probe of tasks_team_worker_lease (team, worker, lease), whatever the
 * worker's history.
 */
export function recordClaim(db: Db, teamId: string, workerId: string, leaseId: string, now: string) {
  return db
    .insert(workers)
    .select(sql`SELECT c.team_id, c.worker_id, c.role, 'working', c.id, 0, ${now}, ${now}, 0 FROM tasks c WHERE c.team_id = ${teamId} AND c.worker_id = ${workerId} AND c.lease_id = ${leaseId} AND c.status IN ${LEASED_LIST} AND c.lease_expires_at > ${now}`)
    .onConflictDoUpdate({
      target: [workers.teamId, workers.id],
      set: { role: sql`excluded.role`, status: sql`excluded.status`, currentTask: sql`excluded.current_task`, lastSeenAt: sql`excluded.last_seen_at` },
    })
    .returning();
}

/**
 * The worker holding `taskId` under `leaseId` completes it: one more done, and it is no
 * longer its current task. It finds the worker through the task under the same guard as the
 * task's own update (`underLease`), and runs just before that update in one batch, where
 * nothing else runs between them: it counts exactly when the update completes the task, and
 * never when the update changes nothing (a stale or foreign lease, a repeated request).
 */
export function countCompletion(db: Db, teamId: string, taskId: string, leaseId: string, now: string) {
  return endAttemptOfWorker(db, teamId, taskId, leaseId, now, true);
}

/**
 * The worker holding `taskId` under `leaseId` ends its attempt (`completed`: counted as done;
 * else it failed or released the task): idle, and the task no longer its current one, so
 * `GET /v1/workers` does not show it working on a task it let go until its next heartbeat.
 * Same guard and place in the batch as `countCompletion`.
 */
export function endAttemptOfWorker(db: Db, teamId: string, taskId: string, leaseId: string, now: string, completed: boolean) {
  const holder = db.select({ workerId: tasks.workerId }).from(tasks).where(underLease(teamId, taskId, leaseId, now));
  return db
    .update(workers)
    .set({
      ...(completed ? { tasksCompleted: sql`${workers.tasksCompleted} + 1` } : {}),
      status: sql`CASE WHEN ${workers.currentTask} = ${taskId} THEN 'idle' ELSE ${workers.status} END`,
      currentTask: sql`CASE WHEN ${workers.currentTask} = ${taskId} THEN NULL ELSE ${workers.currentTask} END`,
      lastSeenAt: now,
    })
    .where(and(eq(workers.teamId, teamId), sql`${workers.id} = (${holder})`))
    .returning();
}

/**
 * A lease heartbeat is a sign of life from the worker holding the lease, whether or not it
 * also heartbeats as a worker (a client following the curl flow may not): seen now, and one
 * the cron had marked lost is working on this task again. Two statements under the task's
 * guard, in this order: the first touches a worker not lost, the second revives a lost one
 * and returns it only then (a change to announce).
 */
export function seenUnderLease(db: Db, teamId: string, taskId: string, leaseId: string, now: string) {
  const holder = db.select({ workerId: tasks.workerId }).from(tasks).where(underLease(teamId, taskId, leaseId, now));
  const theHolder = and(eq(workers.teamId, teamId), sql`${workers.id} = (${holder})`);
  return [
    db.update(workers).set({ lastSeenAt: now }).where(and(theHolder, ne(workers.status, "lost"))),
    db.update(workers).set({ lastSeenAt: now, status: "working", currentTask: taskId }).where(and(theHolder, eq(workers.status, "lost"))).returning(),
  ] as const;
}

/** Marks lost the workers whose leases the cron just expired (by team) and, in all teams, those not seen since `seenBefore`. */
/** Returns the workers it marked lost. */
export async function markWorkersLost(db: Db, expired: { teamId: string; workerId: string | null }[], seenBefore: string): Promise<WorkerRow[]> {
  const byTeam = new Map<string, Set<string>>();
  for (const e of expired) if (e.workerId) byTeam.set(e.teamId, (byTeam.get(e.teamId) ?? new Set()).add(e.workerId));
  const unseen = db.update(workers).set({ status: "lost" }).where(and(ne(workers.status, "lost"), lt(workers.lastSeenAt, seenBefore))).returning();
  // At most 50 ids a statement: D1 binds at most 100 parameters. Only a change is returned.
  const holders = [...byTeam].flatMap(([teamId, ids]) => chunks([...ids], 50).map((chunk) => db.update(workers).set({ status: "lost" }).where(and(eq(workers.teamId, teamId), inArray(workers.id, chunk), ne(workers.status, "lost"))).returning()));
  const changed = await db.batch([unseen, ...holders]);
  // A worker both silent and holding an expired lease is changed by the first statement only.
  return changed.flat();
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** What a worker has cost so far: what its own attempts reported (the ledger, src/db/costs.ts). */
// Written out in full: drizzle may render a column of the selected table without its table name, which the subquery would read as its own.
const costSoFar = sql<number>`(SELECT round(coalesce(sum(k.cost_usd), 0), ${sql.raw(String(USD_DECIMALS))}) FROM task_costs k WHERE k.team_id = workers.team_id AND k.worker_id = workers.id)`;

/** The team's workers by id, after `afterId`; `limit` rows. */
export function listWorkers(db: Db, teamId: string, limit: number, afterId: string | null) {
  return db
    .select({ worker: workers, costUsd: costSoFar })
    .from(workers)
    .where(and(eq(workers.teamId, teamId), afterId === null ? undefined : gt(workers.id, afterId)))
    .orderBy(asc(workers.id))
    .limit(limit)
    .all();
}

/** The worker with its cost as a query (so it can be part of a batch); `findWorker` runs it. */
export function selectWorker(db: Db, teamId: string, id: string) {
  return db
    .select({ worker: workers, costUsd: costSoFar })
    .from(workers)
    .where(and(eq(workers.teamId, teamId), eq(workers.id, id)));
}

export function findWorker(db: Db, teamId: string, id: string) {
  return selectWorker(db, teamId, id).get();
}
