/** Workers, the per-role running limit and the daily budget, without I/O. */

/** What a worker says it is doing in a heartbeat. */
export const REPORTED_STATUSES = ["idle", "working", "waiting"] as const;
/** `lost` is never reported: the cron sets it (lease expired, or not seen for LOST_AFTER_MS). */
export const WORKER_STATUSES = [...REPORTED_STATUSES, "lost"] as const;
export type WorkerStatus = (typeof WORKER_STATUSES)[number];

export const LOST_AFTER_MS = 5 * 60 * 1000;
/** How long a claim stopped by a role's running limit is told to wait: about one task heartbeat. */
export const LIMIT_RETRY_SECONDS = 30;

/** The start of `now`'s UTC day, as an ISO timestamp comparable with stored ones. */
export function utcDayStart(now: Date): string {
  return `${now.toISOString().slice(0, 10)}T00:00:00.000Z`;
}

/** Whole seconds from `now` to the next UTC midnight (at least 1). */
export function secondsUntilUtcMidnight(now: Date): number {
  const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  return Math.max(1, Math.ceil((midnight - now.getTime()) / 1000));
}

/** What the team's settings and today's numbers were when a claim got nothing. */
export interface ClaimLimits {
  role: string;
  claimable: boolean;
  dailyBudgetUsd: number | null;
  spentTodayUsd: number;
  maxRunning: number | null;
  running: number;
}

export type ClaimRefusal = { reason: "budget" | "max_running"; detail: string; retryAfterSeconds: number };

/**
 * Why a claim that got nothing got nothing: null when nothing was claimable (204), else the
 * budget or the role's limit (429). The budget is named first: waiting for a slot is useless
 * while the day's money is gone.
 */
export function claimRefusal(l: ClaimLimits, now: Date): ClaimRefusal | null {
  if (!l.claimable) return null;
  if (l.dailyBudgetUsd !== null && l.spentTodayUsd >= l.dailyBudgetUsd) {
    return { reason: "budget", detail: `daily budget of $${l.dailyBudgetUsd.toFixed(2)} spent ($${l.spentTodayUsd.toFixed(2)} today); claims resume at 00:00 UTC.`, retryAfterSeconds: secondsUntilUtcMidnight(now) };
  }
  if (l.maxRunning !== null && l.running >= l.maxRunning) {
    return { reason: "max_running", detail: `max_running for ${l.role} is ${l.maxRunning}, and ${l.running} are running.`, retryAfterSeconds: LIMIT_RETRY_SECONDS };
  }
  return null;
}
