import { createRoute, z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { tasks } from "../db/schema";
import { type Db, dbOf } from "../db/client";
import { addUsage, blockDependents, claimLimits, claimNextTask, failUnderLease, findTask, heldUnder, LEASE_CLEARED, toClaimLimits, updateUnderLease } from "../db/tasks";
import { countCompletion, endAttemptOfWorker, recordClaim, seenUnderLease } from "../db/workers";
import { withdrawQuestions } from "../db/questions";
import { addLateSpend, attemptSpendRecorded, recordAttemptCost, recordClaimedAttempt } from "../db/costs";
import { checkLease, leaseExpiry, retryWaits, type TaskStatus } from "../domain/tasks";
import { budgetEventId, failureEventType, failureReason } from "../domain/team-events";
import { claimRefusal, utcDayStart } from "../domain/workers";
import { authenticate, requireScope } from "../lib/auth";
import { newId } from "../lib/crypto";
import { ApiError } from "../lib/errors";
import { json, newRouter, problemResponses, security } from "../lib/openapi";
import { blockedEvents, taskEvent, withdrawnEvents, workerEvent } from "../lib/task-events";
import { publishTeamEvents, teamEvent } from "../lib/team-stream";
import { attemptReportSchema, leasedTaskSchema, roleSchema, taskIdParam, taskSchema, toLeasedTask, toTask, workerIdSchema } from "../lib/task-schemas";

/** A worker's side of the queue: claim a task under a lease, keep the lease alive, end it. */
export const taskLeaseRoutes = newRouter();

const leaseResponses = { 409: { description: "The lease is stale (expired, or the task was claimed again) or not this task's" }, ...problemResponses } as const;

taskLeaseRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/tasks/claim",
    summary: "Claim the most urgent, oldest claimable task of a role, under a 15-minute lease (204: none; 429: the role's max_running or the daily budget)",
    description:
      "Claimable: pending, past its retry backoff, and every dependency completed. Atomic: concurrent claims never get the same task, nor go past the role's `max_running` or the team's `daily_budget_usd` (what attempts reported spending this UTC day). The worker is recorded as working on the task.",
    security,
    middleware: [authenticate, requireScope("agent")] as const,
    request: {
      body: {
        required: true,
        ...json(
          z.object({
            worker_id: workerIdSchema,
            role: roleSchema,
            claim_id: z
              .string()
              .regex(/^[A-Za-z0-9_-]{16,100}$/, "16 to 100 letters, digits, _ or -")
              .optional()
              .describe("A random id the worker makes once per claim and sends again when it retries it: a retried claim whose first answer was lost returns the task that claim took, instead of taking a second one"),
          }),
        ),
      },
    },
    responses: {
      200: { description: "Claimed", ...json(leasedTaskSchema) },
      204: { description: "Nothing is claimable now" },
      429: { description: "A task is claimable, but the role's max_running or the daily budget stops the claim (problem+json, Retry-After)" },
      ...problemResponses,
    },
  }),
  async (c) => {
    const { worker_id, role, claim_id } = c.req.valid("json");
    const teamId = c.get("auth").team_id;
    const db = dbOf(c.env);
    const now = new Date();
    const at = now.toISOString();
    const dayStart = utcDayStart(now);
    // A claim_id names the lease, so a retry of the same claim finds what it took.
    const leaseId = claim_id ? `lease_${claim_id}` : newId("lease", 16);
    const claim = { teamId, role, workerId: worker_id, leaseId, now: at, dayStart, leaseExpiresAt: leaseExpiry(now) };
    // One round trip: the claim, its worker, and (only when nothing was claimed) what tells
    // "nothing to do" from "stopped by a limit", read after the claim in the same transaction;
    // with a claim_id, also the task an earlier try of this claim took (then no new claim).
    const claiming = [
      claimNextTask(db, { ...claim, retryable: claim_id !== undefined }),
      recordClaimedAttempt(db, teamId, worker_id, leaseId, at),
      recordClaim(db, teamId, worker_id, leaseId, at),
      claimLimits(db, claim),
    ] as const;
    const [[claimed], , [worker], [limitsRow], [earlier]] = claim_id ? await db.batch([...claiming, heldUnder(db, teamId, worker_id, leaseId, at)]) : [...(await db.batch(claiming)), []];
    if (!claimed && earlier) return c.json(toLeasedTask(earlier), 200);
    if (claimed) {
      await publishTeamEvents(c.env, teamId, [taskEvent("task.claimed", claimed, { worker_id }), ...(worker ? [workerEvent(worker, at)] : [])]);
      return c.json(toLeasedTask(claimed), 200);
    }
    const limits = toClaimLimits(role, limitsRow);
    const refusal = claimRefusal(limits, now);
    if (refusal?.reason === "budget") {
      // Announced once a day: every refusal sends the same event id, which the hub applies once.
      const day = dayStart.slice(0, 10);
      await publishTeamEvents(c.env, teamId, [teamEvent("budget.reached", { day, daily_budget_usd: limits.dailyBudgetUsd, spent_usd: limits.spentTodayUsd, detail: refusal.detail }, at, budgetEventId(day))]);
    }
    if (refusal) throw new ApiError("rate_limited", refusal.detail, [], { "Retry-After": String(refusal.retryAfterSeconds) });
    return c.body(null, 204);
  },
);

/**
 * A change under the lease changed nothing: 404 when the team has no such task, else 409
 * naming why the lease is not the task's current, unexpired one. Only this path reads the
 * task: the change itself is guarded by the lease (`underLease`), so the normal path is one
 * round trip.
 */
async function lostLease(db: Db, team: string, id: string, leaseId: string, now: string, report?: { spendCounted: boolean }): Promise<never> {
  const row = await findTask(db, team, id);
  if (!row) throw new ApiError("not_found", `No task ${id}.`);
  const verdict = checkLease({ status: row.status as TaskStatus, lease_id: row.leaseId, lease_expires_at: row.leaseExpiresAt }, leaseId, now);
  // checkLease tests what the guard tested, at the same `now`: it cannot pass here unless the
  // lease became current again, which a lease never does. Answered all the same, not thrown.
  const why = verdict.ok ? "The lease ended while this request was handled." : verdict.reason;
  // A late report's spend is counted all the same (recordAttemptCost): say so, or a worker would
  // not know whether to report it again; a report sent again (its answer lost) finds the
  // attempt's spend already in the ledger, which is worth saying as well.
  if (report?.spendCounted) throw new ApiError("conflict", `${why} The cost it reported was counted for the attempt.`);
  if (report && (await attemptSpendRecorded(db, team, id, leaseId))) throw new ApiError("conflict", `${why} The attempt's cost was already counted (an earlier report of it); it is not counted twice.`);
  throw new ApiError("conflict", why);
}

taskLeaseRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/tasks/{id}/heartbeat",
    summary: "Extend a task's lease by 15 minutes from now; the first heartbeat marks a claimed task running",
    security,
    middleware: [authenticate, requireScope("agent")] as const,
    request: { params: taskIdParam, body: { required: true, ...json(z.object({ lease_id: z.string().min(1).max(200) })) } },
    responses: { 200: { description: "The lease, extended", ...json(leasedTaskSchema) }, ...leaseResponses },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { lease_id } = c.req.valid("json");
    const team = c.get("auth").team_id;
    const db = dbOf(c.env);
    const now = new Date();
    const at = now.toISOString();
    const leaseExpiresAt = leaseExpiry(now);
    // Two guarded updates on disjoint statuses, in this order, so at most one changes the task
    // and the one that did says whether it just started: the first extends a task already
    // running (or waiting for an answer); the second, a claimed one, which it marks running.
    // Swapped, the first would mark it running and the second would then match it too.
    const [touch, revive] = seenUnderLease(db, team, id, lease_id, at);
    const [, revived, [extended], [started]] = await db.batch([
      touch,
      revive,
      updateUnderLease(db, team, id, lease_id, at, { leaseExpiresAt }, ["running", "waiting_input"]),
      updateUnderLease(db, team, id, lease_id, at, { leaseExpiresAt, status: "running" }, ["claimed"]),
    ]);
    const updated = started ?? extended;
    if (!updated) return lostLease(db, team, id, lease_id, at);
    const news = [...(started ? [taskEvent("task.running", started)] : []), ...revived.map((w) => workerEvent(w, at))];
    if (news.length > 0) await publishTeamEvents(c.env, team, news);
    return c.json(toLeasedTask(updated), 200);
  },
);

taskLeaseRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/tasks/{id}/complete",
    summary: "End the attempt as completed, with its result, cost, tokens and duration; dependents become claimable",
    security,
    middleware: [authenticate, requireScope("agent")] as const,
    request: { params: taskIdParam, body: { required: true, ...json(attemptReportSchema) } },
    responses: { 200: { description: "Completed", ...json(taskSchema) }, ...leaseResponses },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const report = c.req.valid("json");
    const team = c.get("auth").team_id;
    const db = dbOf(c.env);
    const at = new Date().toISOString();
    // One round trip: the worker is counted under the same lease guard as the task's update,
    // just before it (see countCompletion), so it counts exactly when the task completes.
    // A question still open is moot once the task completed: withdrawn in the same transaction.
    const [, spent, [worker], [updated], withdrawn] = await db.batch([
      addLateSpend(db, team, id, report.lease_id, at, report),
      recordAttemptCost(db, team, id, report.lease_id, at, report),
      countCompletion(db, team, id, report.lease_id, at),
      updateUnderLease(db, team, id, report.lease_id, at, {
        status: "completed",
        ...LEASE_CLEARED,
        ...(report.result !== undefined ? { result: report.result } : {}),
        ...addUsage(report),
        completedAt: at,
      }),
      withdrawQuestions(db, team, [id]),
    ]);
    if (!updated) return lostLease(db, team, id, report.lease_id, at, { spendCounted: spent.length > 0 });
    await publishTeamEvents(c.env, team, [taskEvent("task.completed", updated), ...withdrawnEvents(withdrawn, at), ...(worker ? [workerEvent(worker, at)] : [])]);
    return c.json(toTask(updated), 200);
  },
);

taskLeaseRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/tasks/{id}/fail",
    summary: "End the attempt as failed: retried after an exponential, jittered backoff until max_attempts, then failed (its dependents blocked)",
    security,
    middleware: [authenticate, requireScope("agent")] as const,
    request: { params: taskIdParam, body: { required: true, ...json(attemptReportSchema) } },
    responses: { 200: { description: "Back in the queue (pending, available_at in the future) or failed", ...json(taskSchema) }, ...leaseResponses },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const report = c.req.valid("json");
    const team = c.get("auth").team_id;
    const db = dbOf(c.env);
    const now = new Date();
    const at = now.toISOString();
    // One round trip: the statement decides retry or failure by the attempts it reads, and
    // failing for good blocks the dependents in the same transaction (a retry skips that).
    const [, spent, [worker], [updated], blocked, withdrawn] = await db.batch([
      addLateSpend(db, team, id, report.lease_id, at, report),
      recordAttemptCost(db, team, id, report.lease_id, at, report),
      endAttemptOfWorker(db, team, id, report.lease_id, at, false),
      failUnderLease(db, team, id, report.lease_id, at, report, retryWaits(now)),
      blockDependents(db, team, at, id),
      withdrawQuestions(db, team, [id]),
    ]);
    if (!updated) {
      // Only when the task had failed for good before (the cron) and something was left to block.
      await publishTeamEvents(c.env, team, blockedEvents(blocked, at));
      return lostLease(db, team, id, report.lease_id, at, { spendCounted: spent.length > 0 });
    }
    await publishTeamEvents(c.env, team, [
      // The event leaves `result` out: the reason is what tells a person why it failed.
      taskEvent(failureEventType(updated.status), updated, failureReason(report.result)),
      ...blockedEvents(blocked, at),
      ...withdrawnEvents(withdrawn, at),
      ...(worker ? [workerEvent(worker, at)] : []),
    ]);
    return c.json(toTask(updated), 200);
  },
);

taskLeaseRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/tasks/{id}/release",
    summary: "Give the task back to the queue without using up an attempt (a worker stopping): pending and claimable at once",
    description:
      "For a worker that stops before it could finish (the daemon on SIGTERM): the attempt is not counted, there is no backoff, and an open question of the task is withdrawn. A task that failed is `fail`'s business, not this.",
    security,
    middleware: [authenticate, requireScope("agent")] as const,
    request: { params: taskIdParam, body: { required: true, ...json(attemptReportSchema.omit({ result: true }).extend({ reason: z.string().trim().min(1).max(2_000).optional().describe("Why the worker let the task go (shown on the team stream)") })) } },
    responses: { 200: { description: "Back in the queue", ...json(taskSchema) }, ...leaseResponses },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const report = c.req.valid("json");
    const { lease_id, reason } = report;
    const team = c.get("auth").team_id;
    const db = dbOf(c.env);
    const at = new Date().toISOString();
    // The claim counted the attempt; a release takes it back, so stopping a worker never
    // costs a task one of its attempts (nor fails it on its last).
    const [, spent, [worker], [updated], withdrawn] = await db.batch([
      addLateSpend(db, team, id, lease_id, at, report),
      recordAttemptCost(db, team, id, lease_id, at, report),
      endAttemptOfWorker(db, team, id, lease_id, at, false),
      // What the stopped agent had spent still counts.
      updateUnderLease(db, team, id, lease_id, at, { status: "pending", ...LEASE_CLEARED, attempts: sql`max(${tasks.attempts} - 1, 0)`, availableAt: at, ...addUsage(report) }),
      withdrawQuestions(db, team, [id]),
    ]);
    if (!updated) return lostLease(db, team, id, lease_id, at, { spendCounted: spent.length > 0 });
    await publishTeamEvents(c.env, team, [taskEvent("task.released", updated, reason ? { reason } : {}), ...withdrawnEvents(withdrawn, at), ...(worker ? [workerEvent(worker, at)] : [])]);
    return c.json(toTask(updated), 200);
  },
);
