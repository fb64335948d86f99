import { backoffSeconds } from "./backoff";

/**
 * The task queue's rules, without I/O. The claim, expiry and blocking statements in
 * src/db/tasks.ts apply the same rules in SQL, so that each runs as one atomic statement
 * (a pending task is claimable once `available_at` has passed and every dependency
 * completed; the most urgent, then the oldest, is claimed first).
 */

/** Most urgent first. Stored as the index (critical = 0), so `ORDER BY priority` claims in order. */
export const PRIORITIES = ["critical", "high", "normal", "low"] as const;
export type Priority = (typeof PRIORITIES)[number];

export function priorityRank(priority: Priority): number {
  return PRIORITIES.indexOf(priority);
}

export function priorityName(rank: number): Priority {
  const name = PRIORITIES[rank];
  if (!name) throw new Error(`no priority of rank ${rank}`);
  return name;
}

export const TASK_STATUSES = ["pending", "claimed", "running", "completed", "failed", "cancelled", "blocked", "waiting_input"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** Where a worker holds the task under a lease, which heartbeats extend and the cron expires. */
export const LEASED_STATUSES = ["claimed", "running", "waiting_input"] as const satisfies readonly TaskStatus[];
/** A dependency in one of these will never complete (until a person retries it): its dependents are blocked. */
export const BLOCKING_STATUSES = ["failed", "cancelled", "blocked"] as const satisfies readonly TaskStatus[];

export const TASK_SOURCES = ["manual", "github", "planner", "autoloop"] as const;
export type TaskSource = (typeof TASK_SOURCES)[number];

/** Roles are the lowercase names a team gives its workers (`planner`, `executor`, …). */
export const ROLE_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;

export const DEFAULT_MAX_ATTEMPTS = 3;

/** The largest figures an attempt may report (the API's schema; the worker daemon leaves out larger ones). */
export const ATTEMPT_REPORT_MAX = { cost_usd: 1_000_000, tokens: 1e12, duration_ms: 1e12 } as const;
export const DEFAULT_LEASE_MS = 15 * 60 * 1000;
/** Retry backoff: attempt 1 waits up to 30 s, 2 up to 1 min, … at most an hour (full jitter). */
export const RETRY_BASE_SECONDS = 15;
export const RETRY_MAX_SECONDS = 3600;

/**
 * Every status change the queue makes. `blocked → pending` happens when the dependency that
 * blocked it is retried; `failed|cancelled → pending` is a person's retry; leased → `pending`
 * is a failure with attempts left or an expired lease. `waiting_input` arrives with questions.
 */
const TRANSITIONS: Record<TaskStatus, readonly TaskStatus[]> = {
  pending: ["claimed", "blocked", "cancelled"],
  claimed: ["running", "waiting_input", "completed", "pending", "failed", "cancelled"],
  running: ["waiting_input", "completed", "pending", "failed", "cancelled"],
  waiting_input: ["running", "completed", "pending", "failed", "cancelled"],
  blocked: ["pending", "cancelled"],
  failed: ["pending"],
  cancelled: ["pending"],
  completed: [],
};

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Statuses a person may cancel (the task has not ended) or retry (it failed for good or was cancelled). */
export const CANCELLABLE_STATUSES = TASK_STATUSES.filter((s) => canTransition(s, "cancelled"));
export const RETRYABLE_STATUSES = ["failed", "cancelled"] as const satisfies readonly TaskStatus[];

export function isLeased(status: TaskStatus): boolean {
  return (LEASED_STATUSES as readonly TaskStatus[]).includes(status);
}

export type Verdict = { ok: true } | { ok: false; reason: string };

/** Whether a person may cancel the task now (anything not yet ended). */
export function checkCancel(status: TaskStatus): Verdict {
  return canTransition(status, "cancelled") ? { ok: true } : { ok: false, reason: `The task is ${status}; only a task that has not ended can be cancelled.` };
}

/** Whether a person may retry the task now: only one that failed for good or was cancelled. */
export function checkRetry(task: { status: TaskStatus; blocked_by: string | null }): Verdict {
  if ((RETRYABLE_STATUSES as readonly TaskStatus[]).includes(task.status)) return { ok: true };
  if (task.status === "blocked") return { ok: false, reason: `The task is blocked by ${task.blocked_by}; retry that task and this one is unblocked.` };
  return { ok: false, reason: `The task is ${task.status}; only a failed or cancelled task can be retried.` };
}

export interface LeaseHolder {
  status: TaskStatus;
  lease_id: string | null;
  lease_expires_at: string | null;
}

/**
 * Whether `leaseId` is the task's current, unexpired lease. An expired lease is stale even
 * before the cron takes the task back, so the outcome never depends on when the cron ran.
 */
export function checkLease(task: LeaseHolder, leaseId: string, now: string): Verdict {
  if (!isLeased(task.status)) return { ok: false, reason: `The task is ${task.status}; it has no lease to use.` };
  if (task.lease_id !== leaseId) return { ok: false, reason: "This lease is not this task's current one (a lease of another task, or of an earlier claim of this one)." };
  if (task.lease_expires_at === null || task.lease_expires_at <= now) return { ok: false, reason: `The lease expired at ${task.lease_expires_at}; the task goes back to the queue.` };
  return { ok: true };
}

export function leaseExpiry(now: Date, leaseMs = DEFAULT_LEASE_MS): string {
  return new Date(now.getTime() + leaseMs).toISOString();
}

/** Attempts are counted when a task is claimed, so the attempt that just ended is included. */
export function attemptsUsedUp(task: { attempts: number; max_attempts: number }): boolean {
  return task.attempts >= task.max_attempts;
}

export type FailureOutcome = { status: "pending"; available_at: string } | { status: "failed" };

/** A failed attempt: back to the queue after an exponential, jittered wait, or `failed` for good. */
export function afterFailure(task: { attempts: number; max_attempts: number }, now: Date, random: () => number = Math.random): FailureOutcome {
  if (attemptsUsedUp(task)) return { status: "failed" };
  const seconds = backoffSeconds(task.attempts, random, RETRY_MAX_SECONDS, RETRY_BASE_SECONDS);
  return { status: "pending", available_at: new Date(now.getTime() + seconds * 1000).toISOString() };
}

/**
 * `afterFailure`'s `available_at` for every attempt count with attempts left: entry i is for
 * attempt i + 1, and the last one for every later attempt too (the wait stops growing at
 * RETRY_MAX_SECONDS). For the statement that ends a failed attempt, which picks one by the
 * attempts it reads (src/db/tasks.ts `failUnderLease`), so a failure needs no read first.
 * One draw of `random` serves them all: only one is ever used.
 */
export function retryWaits(now: Date, random: () => number = Math.random): string[] {
  const r = random();
  const waits: string[] = [];
  for (let attempts = 1; ; attempts++) {
    const outcome = afterFailure({ attempts, max_attempts: Number.POSITIVE_INFINITY }, now, () => r);
    if (outcome.status !== "pending") throw new Error("unreachable: attempts are never used up here");
    waits.push(outcome.available_at);
    if (RETRY_BASE_SECONDS * 2 ** attempts >= RETRY_MAX_SECONDS) return waits;
  }
}

export interface Dependency {
  id: string;
  status: TaskStatus;
  blocked_by: string | null;
}

/**
 * The task that keeps a task with these dependencies from ever running, or null: a failed or
 * cancelled dependency itself, or, for a blocked dependency, whatever blocks it — so
 * `blocked_by` always names the failed or cancelled task a person should look at.
 */
export function blockingTask(deps: readonly Dependency[]): string | null {
  for (const d of deps) {
    if (d.status === "failed" || d.status === "cancelled") return d.id;
    if (d.status === "blocked") return d.blocked_by ?? d.id;
  }
  return null;
}

/** Where a worker may ask a question about the task it holds (it then waits for the answer). */
export const ASKABLE_STATUSES = ["claimed", "running"] as const satisfies readonly TaskStatus[];

/** Whether `workerId` may ask a question about the task now: it holds it, unexpired, claimed or running. */
export function checkAsk(task: { status: TaskStatus; worker_id: string | null; lease_expires_at: string | null }, workerId: string, now: string): Verdict {
  if (task.status === "waiting_input") return { ok: false, reason: "The task is waiting_input: its open question must be answered before another is asked." };
  if (!(ASKABLE_STATUSES as readonly TaskStatus[]).includes(task.status)) return { ok: false, reason: `The task is ${task.status}; only a claimed or running task can ask a question.` };
  if (task.worker_id !== workerId) return { ok: false, reason: `The task is held by worker ${task.worker_id}, not ${workerId}.` };
  if (task.lease_expires_at === null || task.lease_expires_at <= now) return { ok: false, reason: `The lease expired at ${task.lease_expires_at}; the task goes back to the queue.` };
  return { ok: true };
}
