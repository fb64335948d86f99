import { and, asc, eq, gt, gte, lt, lte, sql } from "drizzle-orm";
import { USD_DECIMALS } from "../domain/money";
import type { Db } from "./client";
import { taskAttempts, taskCosts, tasks } from "./schema";
import { type AttemptReport, addUsage } from "./tasks";

export const COST_GROUPS = ["day", "role", "worker", "task"] as const;
export type CostGroup = (typeof COST_GROUPS)[number];

/** The claim `leaseId` made of `taskId` (its latest, should a client have reused a claim_id on the same task). */
const attemptOf = (teamId: string, taskId: string, leaseId: string) =>
  sql`SELECT a.* FROM task_attempts a WHERE a.team_id = ${teamId} AND a.task_id = ${taskId} AND a.lease_id = ${leaseId} ORDER BY a.claimed_at DESC LIMIT 1`;

const reportedSomething = (usage: AttemptReport) => sql`(${usage.cost_usd ?? 0} > 0 OR ${usage.tokens ?? 0} > 0 OR ${usage.duration_ms ?? 0} > 0)`;

/**
 * Records what the attempt `taskId` held under `leaseId` reported spending, dated `now`'s UTC
 * day and counted to the worker that claimed it, from the claim (task_attempts) rather than
 * the task: money an agent spent is spent even when its lease expired or the task was claimed
 * again before it reported, so the daily budget counts it although the report is refused (409).
 * Once per attempt: the id, `{task}:{lease}:{claimed_at}`, is new for every claim (even one
 * whose client reused a claim_id), and a repeated report changes nothing. Nothing when
 * nothing was reported. Put it in the batch after `addLateSpend` and before the statement that
 * ends the lease (see there).
 */
export function recordAttemptCost(db: Db, teamId: string, taskId: string, leaseId: string, now: string, usage: AttemptReport) {
  return db
    .insert(taskCosts)
    .select(
      sql`SELECT a.team_id, a.task_id || ':' || a.lease_id || ':' || a.claimed_at, a.task_id, a.worker_id, a.role, ${now.slice(0, 10)}, ${usage.cost_usd ?? 0}, ${usage.tokens ?? 0}, ${usage.duration_ms ?? 0}, ${now}
          FROM (${attemptOf(teamId, taskId, leaseId)}) a
          WHERE ${reportedSomething(usage)}`,
    )
    .onConflictDoNothing()
    .returning({ id: taskCosts.id });
}

/**
 * Whether an attempt under `leaseId` has its spend in the ledger: its ids are
 * `task:lease:claimed_at`, so a range of the primary key finds it without a scan.
 */
export async function attemptSpendRecorded(db: Db, teamId: string, taskId: string, leaseId: string): Promise<boolean> {
  const prefix = `${taskId}:${leaseId}:`;
  const row = await db
    .select({ id: taskCosts.id })
    .from(taskCosts)
    .where(and(eq(taskCosts.teamId, teamId), gt(taskCosts.id, prefix), lt(taskCosts.id, `${taskId}:${leaseId};`)))
    .limit(1)
    .get();
  return row !== undefined;
}

/**
 * A late report's spend added to the task's totals, as a current lease's report adds it in the
 * statement that ends the lease: only when the lease is no longer the task's (that statement
 * then changes nothing) and the attempt's spend is not in the ledger yet. Before
 * `recordAttemptCost` in the batch, which is what puts it there.
 */
export function addLateSpend(db: Db, teamId: string, taskId: string, leaseId: string, now: string, usage: AttemptReport) {
  return db
    .update(tasks)
    .set({ ...addUsage(usage), updatedAt: now })
    .where(
      and(
        eq(tasks.teamId, teamId),
        eq(tasks.id, taskId),
        reportedSomething(usage),
        // Not the current, unexpired lease: the ending statement counts that one.
        sql`NOT (${tasks.leaseId} IS ${leaseId} AND ${tasks.status} IN ('claimed', 'running', 'waiting_input') AND ${tasks.leaseExpiresAt} > ${now})`,
        sql`EXISTS (SELECT 1 FROM (${attemptOf(teamId, taskId, leaseId)}) a
                    WHERE NOT EXISTS (SELECT 1 FROM task_costs k WHERE k.team_id = a.team_id AND k.id = a.task_id || ':' || a.lease_id || ':' || a.claimed_at))`,
      ),
    );
}

/** Every claim is remembered, in the claim's batch after the claim: see `recordAttemptCost`. */
export function recordClaimedAttempt(db: Db, teamId: string, workerId: string, leaseId: string, claimedAt: string) {
  return db
    .insert(taskAttempts)
    .select(
      sql`SELECT t.team_id, t.id, t.lease_id, t.worker_id, t.role, t.claimed_at FROM tasks t
          WHERE t.team_id = ${teamId} AND t.worker_id = ${workerId} AND t.lease_id = ${leaseId} AND t.claimed_at = ${claimedAt} AND t.status = 'claimed'`,
    )
    .onConflictDoNothing();
}

/** What the team's attempts reported spending on one UTC day (`YYYY-MM-DD`), as a subquery: the daily budget's measure. */
export const spentOn = (teamId: string, day: string) => sql<number>`(SELECT round(coalesce(sum(k.cost_usd), 0), ${sql.raw(String(USD_DECIMALS))}) FROM task_costs k WHERE k.team_id = ${teamId} AND k.day = ${day})`;

const groupKey: Record<CostGroup, ReturnType<typeof sql<string>>> = {
  day: sql<string>`${taskCosts.day}`,
  role: sql<string>`${taskCosts.role}`,
  worker: sql<string>`${taskCosts.workerId}`,
  task: sql<string>`${taskCosts.taskId}`,
};

export interface CostQuery {
  teamId: string;
  by: CostGroup;
  /** Inclusive UTC dates, YYYY-MM-DD. */
  from?: string | undefined;
  to?: string | undefined;
  afterKey: string | null;
  limit: number;
}

/** Cost, tokens and duration the attempts reported, summed per group, by key; `tasks` counts the tasks among them. */
export function sumCosts(db: Db, q: CostQuery) {
  const key = groupKey[q.by];
  return db
    .select({
      key,
      costUsd: sql<number>`round(sum(${taskCosts.costUsd}), ${sql.raw(String(USD_DECIMALS))})`,
      tokens: sql<number>`sum(${taskCosts.tokens})`,
      durationMs: sql<number>`sum(${taskCosts.durationMs})`,
      tasks: sql<number>`count(DISTINCT ${taskCosts.taskId})`,
    })
    .from(taskCosts)
    .where(and(eq(taskCosts.teamId, q.teamId), q.from ? gte(taskCosts.day, q.from) : undefined, q.to ? lte(taskCosts.day, q.to) : undefined))
    .groupBy(key)
    .having(q.afterKey === null ? undefined : gt(key, q.afterKey))
    .orderBy(asc(key))
    .limit(q.limit)
    .all();
}
