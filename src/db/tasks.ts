import { and, asc, eq, inArray, lte, sql } from "drizzle-orm";
import { BLOCKING_STATUSES, CANCELLABLE_STATUSES, LEASED_STATUSES, RETRYABLE_STATUSES, TASK_STATUSES, type TaskStatus } from "../domain/tasks";
import type { SQLiteUpdateSetSource } from "drizzle-orm/sqlite-core";
import type { Db } from "./client";
import { USD_DECIMALS } from "../domain/money";
import type { ClaimLimits } from "../domain/workers";
import { tasks, teams } from "./schema";
import { withdrawQuestions } from "./questions";
import { spentOn } from "./costs";

/** The task queue's statements. Each state change is one statement (or one D1 batch, a transaction). */

export type TaskRow = typeof tasks.$inferSelect;
export type NewTaskRow = typeof tasks.$inferInsert;

const list = (values: readonly string[]) => sql.join(values.map((v) => sql`${v}`), sql`, `);

/** The task as a query (so it can end a batch); `findTask` runs it. */
function selectTask(db: Db, teamId: string, id: string) {
  return db.select().from(tasks).where(and(eq(tasks.teamId, teamId), eq(tasks.id, id)));
}

export async function findTask(db: Db, teamId: string, id: string): Promise<TaskRow | undefined> {
  return (await selectTask(db, teamId, id))[0];
}

/** The team's tasks among `ids` (at most 50 here: D1 binds at most 100 parameters). */
export function findTasks(db: Db, teamId: string, ids: string[]) {
  return db.select().from(tasks).where(and(eq(tasks.teamId, teamId), inArray(tasks.id, ids))).all();
}

export function findByIdempotencyKey(db: Db, teamId: string, key: string) {
  return db.select().from(tasks).where(and(eq(tasks.teamId, teamId), eq(tasks.idempotencyKey, key))).get();
}

/**
 * Blocks every pending task of the team that depends, directly or through other tasks, on a
 * failed, cancelled or blocked one, with `blocked_by` naming the failed or cancelled task at
 * the root (src/domain/tasks.ts `blockingTask`). It runs after whatever made a task fail, end
 * or appear, in the same batch where it can, and looks at the whole team, so a task created
 * while its dependency fails is not left pending. `blocked` is for people to see: a claim
 * never relies on it (it checks every dependency), so a moment between two statements is
 * harmless. Its cost grows with the team's pending tasks, not its history. With `ifFailed`,
 * it looks only when that task is `failed` (a batch whose first statement may or may not have
 * failed it for good): a task that failed for good before is harmless too, since this is
 * idempotent.
 */
export function blockDependents(db: Db, teamId: string, now: string, ifFailed?: string) {
  // Recursive without the RECURSIVE keyword, which SQLite does not need and drizzle's `$with`
  // cannot write; built with drizzle (not `db.run(sql)`) so that it can join a D1 batch.
  const doomed = db.$with("doomed", { id: sql<string>`id`, root: sql<string>`root` }).as(sql`
    SELECT d.id AS id, CASE WHEN d.status = 'blocked' THEN coalesce(d.blocked_by, d.id) ELSE d.id END AS root
    FROM tasks d
    WHERE d.team_id = ${teamId} AND d.status IN (${list(BLOCKING_STATUSES)})
      AND d.id IN (SELECT j.value FROM tasks p, json_each(p.depends_on) j WHERE p.team_id = ${teamId} AND p.status = 'pending')
    UNION
    SELECT p.id, doomed.root
    FROM doomed, tasks p, json_each(p.depends_on) j
    WHERE p.team_id = ${teamId} AND p.status = 'pending' AND j.value = doomed.id`);
  // With `ifFailed`, the team is the key SQLite seeks the pending tasks by, and NULL unless
  // that task failed: then the statement seeks nothing and reads no pending task (a separate
  // EXISTS term would be tested once per pending task of the team).
  const team = ifFailed === undefined ? sql`${teamId}` : sql`(SELECT f.team_id FROM tasks f WHERE f.team_id = ${teamId} AND f.id = ${ifFailed} AND f.status = 'failed')`;
  return db
    .with(doomed)
    .update(tasks)
    .set({ status: "blocked", blockedBy: sql`(SELECT min(root) FROM doomed WHERE doomed.id = ${tasks.id})`, updatedAt: now })
    .where(and(sql`${tasks.teamId} = ${team}`, eq(tasks.status, "pending"), sql`${tasks.id} IN (SELECT id FROM doomed)`))
    .returning({ id: tasks.id, blockedBy: tasks.blockedBy, version: tasks.version });
}

/** Tasks `blockDependents` just blocked, or a retry unblocked: for the team stream. */
export type BlockChange = { id: string; blockedBy: string | null; version: number };
/** A task a retry unblocked, at the version that write gave it. */
export type UnblockChange = { id: string; version: number };

/** Inserts a task (nothing when its idempotency key is taken) and blocks it at once if a dependency cannot complete. */
export async function insertTask(db: Db, row: NewTaskRow & { teamId: string; id: string; updatedAt: string }): Promise<TaskRow | undefined> {
  const insert = db.insert(tasks).values(row).onConflictDoNothing();
  // Without dependencies nothing can block it, and no task depends on it yet.
  if ((row.dependsOn ?? []).length === 0) return (await insert.returning())[0];
  const [inserted, , current] = await db.batch([insert.returning({ id: tasks.id }), blockDependents(db, row.teamId, row.updatedAt), selectTask(db, row.teamId, row.id)]);
  return inserted.length > 0 ? current[0] : undefined;
}

export interface ClaimRequest {
  teamId: string;
  role: string;
  workerId: string;
  leaseId: string;
  now: string;
  leaseExpiresAt: string;
}

/** A pending task of the role, past its backoff, every dependency completed: what a claim may take. */
function claimable(r: { teamId: string; role: string; now: string }) {
  return [
    eq(tasks.teamId, r.teamId),
    eq(tasks.status, "pending"),
    eq(tasks.role, r.role),
    lte(tasks.availableAt, r.now),
    // Every dependency completed: none is missing or in another state.
    sql`NOT EXISTS (SELECT 1 FROM json_each(${tasks.dependsOn}) j LEFT JOIN tasks d ON d.team_id = ${tasks.teamId} AND d.id = j.value WHERE d.status IS NOT 'completed')`,
  ];
}

/** The role's entry in the team's `max_running` (NULL: no limit). Roles never hold a quote (ROLE_PATTERN). */
const maxRunningOf = (teamId: string, role: string) => sql`(SELECT json_extract(t.max_running, ${`$."${role}"`}) FROM teams t WHERE t.id = ${teamId})`;
const runningOf = (teamId: string, role: string) => sql`(SELECT count(*) FROM tasks r WHERE r.team_id = ${teamId} AND r.role = ${role} AND r.status IN (${list(LEASED_STATUSES)}))`;
const dailyBudgetOf = (teamId: string) => sql`(SELECT t.daily_budget_usd FROM teams t WHERE t.id = ${teamId})`;
/** What the team's attempts reported spending on the UTC day that starts at `dayStart` (the ledger, src/db/costs.ts). */
const spentSince = (teamId: string, dayStart: string) => spentOn(teamId, dayStart.slice(0, 10));

/**
 * Claims the most urgent, oldest claimable task of a role in ONE statement: the subquery
 * picks it and the UPDATE takes it, and D1 runs one statement at a time, so two workers
 * never get the same task (D1 has no SKIP LOCKED, and needs none). The role's running limit
 * and the team's daily budget are checked in the same statement, so concurrent claims can
 * never go past them. Counts the attempt. A query (one row or none), so that it can begin a batch.
 */
export function claimNextTask(db: Db, r: ClaimRequest & { dayStart: string; retryable?: boolean }) {
  const next = db
    .select({ id: tasks.id })
    .from(tasks)
    .where(
      and(
        ...claimable(r),
        sql`(${maxRunningOf(r.teamId, r.role)} IS NULL OR ${runningOf(r.teamId, r.role)} < ${maxRunningOf(r.teamId, r.role)})`,
        sql`(${dailyBudgetOf(r.teamId)} IS NULL OR ${spentSince(r.teamId, r.dayStart)} < ${dailyBudgetOf(r.teamId)})`,
      ),
    )
    .orderBy(asc(tasks.priority), asc(tasks.createdAt), sql`rowid`)
    .limit(1);
  return db
    .update(tasks)
    .set({
      status: "claimed",
      workerId: r.workerId,
      leaseId: r.leaseId,
      leaseExpiresAt: r.leaseExpiresAt,
      attempts: sql`${tasks.attempts} + 1`,
      claimedAt: r.now,
      updatedAt: r.now,
    })
    .where(
      and(
        eq(tasks.teamId, r.teamId),
        eq(tasks.status, "pending"),
        sql`${tasks.id} = (${next})`,
        // A retried claim (same lease id, from the client's claim_id) whose first try took a
        // task takes no second one. A fresh lease id cannot have taken one: no probe then.
        r.retryable ? sql`NOT ${holdsLease(r)}` : undefined,
      ),
    )
    .returning();
}

/**
 * The task `workerId` holds under `leaseId`, unexpired: what an earlier try of a retried claim
 * took (one probe of tasks_team_worker_lease).
 */
export function heldUnder(db: Db, teamId: string, workerId: string, leaseId: string, now: string) {
  return db
    .select()
    .from(tasks)
    .where(and(eq(tasks.teamId, teamId), eq(tasks.workerId, workerId), eq(tasks.leaseId, leaseId), inArray(tasks.status, [...LEASED_STATUSES]), sql`${tasks.leaseExpiresAt} > ${now}`));
}

/**
 * Why the claim before it in the same batch took nothing, read in that batch: whether a task
 * was claimable, the limits, and today's numbers as the claim saw them, so a 204 or a 429
 * costs no second round trip. A sum is computed only when its limit is set (a team without
 * a budget never sums today's costs). No row when the claim took a task: its lease is then
 * on a row, which one probe of tasks_team_worker_lease finds.
 */
export function claimLimits(db: Db, r: ClaimRequest & { dayStart: string }) {
  const anyClaimable = db.select({ one: sql`1` }).from(tasks).where(and(...claimable(r))).limit(1);
  const maxRunning = sql<number | null>`json_extract(${teams.maxRunning}, ${`$."${r.role}"`})`;
  return db
    .select({
      claimable: sql<number>`EXISTS ${anyClaimable}`,
      dailyBudgetUsd: teams.dailyBudgetUsd,
      spentTodayUsd: sql<number>`CASE WHEN ${teams.dailyBudgetUsd} IS NULL THEN 0 ELSE ${spentSince(r.teamId, r.dayStart)} END`,
      maxRunning,
      running: sql<number>`CASE WHEN ${maxRunning} IS NULL THEN 0 ELSE ${runningOf(r.teamId, r.role)} END`,
    })
    .from(teams)
    .where(and(eq(teams.id, r.teamId), sql`NOT ${holdsLease(r)}`));
}

/** LEASED_STATUSES as an SQL list, for statements written out. */
export const LEASED_LIST = sql.raw(`(${LEASED_STATUSES.map((x) => `'${x}'`).join(", ")})`);

/**
 * Whether the worker holds a task under the lease, unexpired (one probe of
 * tasks_team_worker_lease): a claim under it took one. An expired one counts as none, before
 * the cron returns its task as after: a claim retried that late claims anew (and the same
 * lease id then names the new task too, which every lease call tells apart by the task id).
 * The same test as `heldUnder`'s, and `recordClaim`'s (src/db/workers.ts).
 */
export function holdsLease(r: { teamId: string; workerId: string; leaseId: string; now: string }) {
  return sql`EXISTS (SELECT 1 FROM tasks h WHERE h.team_id = ${r.teamId} AND h.worker_id = ${r.workerId} AND h.lease_id = ${r.leaseId} AND h.status IN ${LEASED_LIST} AND h.lease_expires_at > ${r.now})`;
}

/** What `claimLimits` read (nothing: the team is gone, so nothing is claimable). */
export function toClaimLimits(role: string, row: { claimable: number; dailyBudgetUsd: number | null; spentTodayUsd: number; maxRunning: number | null; running: number } | undefined): ClaimLimits {
  return {
    role,
    claimable: Boolean(row?.claimable),
    dailyBudgetUsd: row?.dailyBudgetUsd ?? null,
    spentTodayUsd: row?.spentTodayUsd ?? 0,
    maxRunning: row?.maxRunning ?? null,
    running: row?.running ?? 0,
  };
}

/**
 * `leaseId` is the task's current, unexpired lease, and the task is in one of `statuses` (by
 * default any leased one): the SQL form of `checkLease`, for the statements that change a
 * task, or its worker, only under the lease.
 */
export function underLease(teamId: string, id: string, leaseId: string, now: string, statuses: readonly TaskStatus[] = LEASED_STATUSES) {
  return and(eq(tasks.teamId, teamId), eq(tasks.id, id), eq(tasks.leaseId, leaseId), inArray(tasks.status, [...statuses]), sql`${tasks.leaseExpiresAt} > ${now}`);
}

/**
 * Changes a task only while `leaseId` is still its current, unexpired lease and the task is in
 * one of `statuses`: the check and the write are one step. No row when it is not (the caller
 * then reads the task to say why: `lostLease`).
 */
export function updateUnderLease(db: Db, teamId: string, id: string, leaseId: string, now: string, set: SQLiteUpdateSetSource<typeof tasks>, statuses: readonly TaskStatus[] = LEASED_STATUSES) {
  return db
    .update(tasks)
    .set({ ...set, updatedAt: now })
    .where(underLease(teamId, id, leaseId, now, statuses))
    .returning();
}

/**
 * Ends a failed attempt under its lease in one statement that decides by the attempts it
 * reads: `failed` for good (ended now) once they are used up, else back to `pending` after
 * the wait `waits` gives for that many attempts (`retryWaits`). No read comes first, so the
 * outcome cannot go stale between a read and the write.
 */
export function failUnderLease(db: Db, teamId: string, id: string, leaseId: string, now: string, report: AttemptReport, waits: readonly string[]) {
  const usedUp = sql`${tasks.attempts} >= ${tasks.maxAttempts}`;
  // waits[i] is for attempt i + 1; the last serves every later attempt (the wait stops growing).
  const wait = sql`CASE min(max(${tasks.attempts}, 1), ${waits.length}) ${sql.join(
    waits.map((at, i) => sql`WHEN ${i + 1} THEN ${at}`),
    sql` `,
  )} END`;
  return updateUnderLease(db, teamId, id, leaseId, now, {
    ...LEASE_CLEARED,
    ...(report.result !== undefined ? { result: report.result } : {}),
    ...addUsage(report),
    status: sql`CASE WHEN ${usedUp} THEN 'failed' ELSE 'pending' END`,
    availableAt: sql`CASE WHEN ${usedUp} THEN ${tasks.availableAt} ELSE ${wait} END`,
    completedAt: sql`CASE WHEN ${usedUp} THEN ${now} ELSE ${tasks.completedAt} END`,
  });
}

/** What a worker reports as an attempt ends. */
export type AttemptReport = { result?: string | undefined; cost_usd?: number | undefined; tokens?: number | undefined; duration_ms?: number | undefined };

/** What ends a lease, whichever way: no lease, no holder's deadline. */
export const LEASE_CLEARED = { leaseId: null, leaseExpiresAt: null } as const;

/** Adds an attempt's reported cost, tokens and duration to the task's totals. */
export function addUsage(usage: AttemptReport) {
  return {
    costUsd: sql`round(${tasks.costUsd} + ${usage.cost_usd ?? 0}, ${sql.raw(String(USD_DECIMALS))})`,
    tokens: sql`${tasks.tokens} + ${usage.tokens ?? 0}`,
    durationMs: sql`${tasks.durationMs} + ${usage.duration_ms ?? 0}`,
  };
}

/**
 * Returns every task whose lease expired to the queue, in all teams, in one statement:
 * `pending` at once (no backoff: the worker vanished, the task did not fail), or `failed`
 * when its attempts are used up (they are counted at claim; see `attemptsUsedUp`).
 */
export function expireLeases(db: Db, now: string) {
  const usedUp = sql`${tasks.attempts} >= ${tasks.maxAttempts}`;
  return db
    .update(tasks)
    .set({
      status: sql`CASE WHEN ${usedUp} THEN 'failed' ELSE 'pending' END`,
      ...LEASE_CLEARED,
      availableAt: now,
      completedAt: sql`CASE WHEN ${usedUp} THEN ${now} ELSE NULL END`,
      updatedAt: now,
    })
    .where(and(inArray(tasks.status, [...LEASED_STATUSES]), lte(tasks.leaseExpiresAt, now)))
    .returning()
    .all();
}

/**
 * A person's retry: back to pending with fresh attempts, its dependents unblocked unless
 * something else still blocks them. The task starts over, so what belonged to the last
 * claim goes (no worker holds it or claimed it in this run: worker_id and claimed_at, as
 * well as the lease). What the attempts left stays, as after `failUnderLease` puts a failed
 * attempt back to pending: `result` is still the last attempt's (why it failed, for whoever
 * looks before the next attempt replaces it) and cost, tokens and duration keep adding up.
 */
export async function retryTask(db: Db, teamId: string, id: string, now: string) {
  const [retried, unblocked, blocked, current] = await db.batch([
    db
      .update(tasks)
      .set({ status: "pending", attempts: 0, availableAt: now, blockedBy: null, completedAt: null, ...LEASE_CLEARED, workerId: null, claimedAt: null, updatedAt: now })
      .where(and(eq(tasks.teamId, teamId), eq(tasks.id, id), inArray(tasks.status, [...RETRYABLE_STATUSES])))
      .returning({ id: tasks.id }),
    db
      .update(tasks)
      .set({ status: "pending", blockedBy: null, updatedAt: now })
      .where(and(eq(tasks.teamId, teamId), eq(tasks.status, "blocked"), eq(tasks.blockedBy, id)))
      .returning({ id: tasks.id, version: tasks.version }),
    blockDependents(db, teamId, now),
    selectTask(db, teamId, id),
  ]);
  if (retried.length === 0 || !current[0]) return undefined;
  // Unblocked, then blocked again by another dependency: only the second is news.
  const stillBlocked = new Set(blocked.map((b) => b.id));
  return { task: current[0], unblocked: unblocked.filter((u) => !stillBlocked.has(u.id)), blocked };
}

/** A person's cancel of a task that has not ended (its lease, if any, is void); its dependents are blocked. */
export async function cancelTask(db: Db, teamId: string, id: string, now: string) {
  const [cancelled, blocked, current, withdrawn] = await db.batch([
    db
      .update(tasks)
      .set({ status: "cancelled", blockedBy: null, completedAt: now, ...LEASE_CLEARED, updatedAt: now })
      .where(and(eq(tasks.teamId, teamId), eq(tasks.id, id), inArray(tasks.status, [...CANCELLABLE_STATUSES])))
      .returning({ id: tasks.id }),
    blockDependents(db, teamId, now),
    selectTask(db, teamId, id),
    withdrawQuestions(db, teamId, [id]),
  ]);
  return cancelled.length > 0 && current[0] ? { task: current[0], blocked, withdrawn } : undefined;
}

/** How many of the team's tasks are in each status (every status present, zero or more), optionally of one role. */
export async function countTasksByStatus(db: Db, teamId: string, role?: string): Promise<Record<TaskStatus, number>> {
  const rows = await db
    .select({ status: tasks.status, n: sql<number>`count(*)` })
    .from(tasks)
    .where(and(eq(tasks.teamId, teamId), role ? eq(tasks.role, role) : undefined))
    .groupBy(tasks.status)
    .all();
  const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
  for (const row of rows) if (row.status in counts) counts[row.status as TaskStatus] = row.n;
  return counts;
}
