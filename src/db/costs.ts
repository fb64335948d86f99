import { and, asc, eq, gt, gte, lte, sql } from "drizzle-orm";
import type { Db } from "./client";
import { taskCosts } from "./schema";
import type { AttemptReport } from "./tasks";

export const COST_GROUPS = ["day", "role", "worker", "task"] as const;
export type CostGroup = (typeof COST_GROUPS)[number];

/**
 * Records what the attempt `taskId` holds under `leaseId` reported spending, dated `now`'s UTC
 * day and counted to the worker holding it. It reads the task under the lease guard, so put
 * it in the batch BEFORE the statement that ends the lease (complete, fail, release): it
 * records exactly when that statement will apply, and never for a stale lease or a repeated
 * request (after the first, the lease is gone). The id, `{task}:{lease}:{claimed_at}`, is
 * new for every claim, even one whose client reused a claim_id. Nothing when nothing was reported.
 */
export function recordAttemptCost(db: Db, teamId: string, taskId: string, leaseId: string, now: string, usage: AttemptReport) {
  const cost = usage.cost_usd ?? 0;
  const tokens = usage.tokens ?? 0;
  const duration = usage.duration_ms ?? 0;
  return db
    .insert(taskCosts)
    .select(
      sql`SELECT a.team_id, a.id || ':' || a.lease_id || ':' || a.claimed_at, a.id, coalesce(a.worker_id, ''), a.role, ${now.slice(0, 10)}, ${cost}, ${tokens}, ${duration}, ${now}
          FROM tasks a
          WHERE a.team_id = ${teamId} AND a.id = ${taskId} AND a.lease_id = ${leaseId}
            AND a.status IN ('claimed', 'running', 'waiting_input') AND a.lease_expires_at > ${now}
            AND (${cost} > 0 OR ${tokens} > 0 OR ${duration} > 0)`,
    )
    .onConflictDoNothing();
}

/** What the team's attempts reported spending on one UTC day (`YYYY-MM-DD`), as a subquery: the daily budget's measure. */
export const spentOn = (teamId: string, day: string) => sql<number>`(SELECT coalesce(sum(k.cost_usd), 0) FROM task_costs k WHERE k.team_id = ${teamId} AND k.day = ${day})`;

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
      costUsd: sql<number>`sum(${taskCosts.costUsd})`,
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
