import { and, asc, eq, gt, gte, lte, or, sql } from "drizzle-orm";
import type { Db } from "./client";
import { tasks } from "./schema";

export const COST_GROUPS = ["day", "role", "worker", "task"] as const;
export type CostGroup = (typeof COST_GROUPS)[number];

/**
 * The UTC day a task's cost belongs to: attempts report their cost as they end, so a task that
 * ended is dated by its end, and one still in the queue (a failed attempt, to be retried) by
 * its last change.
 */
const costDay = sql<string>`substr(coalesce(${tasks.completedAt}, ${tasks.updatedAt}), 1, 10)`;

const groupKey: Record<CostGroup, ReturnType<typeof sql<string>>> = {
  day: costDay,
  role: sql<string>`${tasks.role}`,
  worker: sql<string>`coalesce(${tasks.workerId}, '')`,
  task: sql<string>`${tasks.id}`,
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

/** Cost, tokens and duration summed per group, over the team's tasks that used any, by key. */
export function sumCosts(db: Db, q: CostQuery) {
  const key = groupKey[q.by];
  return db
    .select({ key, costUsd: sql<number>`sum(${tasks.costUsd})`, tokens: sql<number>`sum(${tasks.tokens})`, durationMs: sql<number>`sum(${tasks.durationMs})`, tasks: sql<number>`count(*)` })
    .from(tasks)
    .where(
      and(
        eq(tasks.teamId, q.teamId),
        or(gt(tasks.costUsd, 0), gt(tasks.tokens, 0), gt(tasks.durationMs, 0)),
        q.from ? gte(costDay, q.from) : undefined,
        q.to ? lte(costDay, q.to) : undefined,
      ),
    )
    .groupBy(key)
    .having(q.afterKey === null ? undefined : gt(key, q.afterKey))
    .orderBy(asc(key))
    .limit(q.limit)
    .all();
}

