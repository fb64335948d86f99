import { lt } from "drizzle-orm";
import { dbOf } from "../db/client";
import { webhookIds } from "../db/schema";
import { blockDependents, expireLeases } from "../db/tasks";
import { markWorkersLost } from "../db/workers";
import { withdrawOrphanedQuestions } from "../db/orphaned-questions";
import { LOST_AFTER_MS } from "../domain/workers";
import { TOLERANCE_SECONDS } from "../lib/standard-webhooks";
import { expiryEventType, type TeamEvent } from "../domain/team-events";
import { log } from "../lib/log";
import { blockedEvents, taskEvent, withdrawnEvents, workerEvent } from "../lib/task-events";
import { publishTeamEvents } from "../lib/team-stream";
import { expireDeliveries, requeueStalled } from "../notify/deliver";
import { expireLogs } from "./log-retention";
import { sweepSentinels } from "./sentinels";
import { workspaceUsageCron } from "./workspace-usage";

/**
 * The every-minute cron: sweep callback sentinels; return tasks whose lease expired to the
 * queue and mark lost the workers that held them or went silent; withdraw open questions no
 * attempt waits on any more (those of the expired attempts); forget webhook ids past the
 * signature window; delete worker log batches older than 30 days (R2 objects and index rows);
 * queue again notification deliveries whose message never went out, and forget ended ones
 * after 30 days; reconcile a slice of the workspace's usage.
 *
 * Each step runs on its own: one that throws (R2 or D1 failing for a moment) is logged as one
 * JSON line and the others still run, so a sentinel listing that failed never keeps leases
 * from expiring that minute. Every step is safe to run again the next minute. When any step
 * failed the run still rejects, after all of them ran, naming the steps: the invocation shows
 * as failed in the cron's history and alerts, rather than passing for a clean run.
 */
export async function handleScheduled(_controller: ScheduledController, env: Env, _ctx?: ExecutionContext): Promise<void> {
  const steps: [string, () => Promise<unknown>][] = [
    [
      "sentinel sweep",
      async () => {
        const report = await sweepSentinels(env);
        if (report.applied + report.rejected + report.skipped > 0) log("info", "sentinel sweep", { ...report });
      },
    ],
    ["lease expiry", () => expireTaskLeases(env)],
    // After the expiry, and on its own: the questions of the attempts it ended, and any an earlier run left open.
    ["question withdrawal", () => withdrawMootQuestions(env)],
    [
      "webhook id pruning",
      () =>
        dbOf(env)
          .delete(webhookIds)
          .where(lt(webhookIds.seenAt, Date.now() - 2 * TOLERANCE_SECONDS * 1000)),
    ],
    [
      "log expiry",
      async () => {
        const expiredLogs = await expireLogs(env);
        if (expiredLogs > 0) log("info", "log batches expired", { batches: expiredLogs });
      },
    ],
    [
      "notification re-queue",
      async () => {
        const requeued = await requeueStalled(env);
        if (requeued > 0) log("warn", "stalled notification deliveries queued again", { deliveries: requeued });
      },
    ],
    [
      "notification expiry",
      async () => {
        const forgotten = await expireDeliveries(env);
        if (forgotten > 0) log("info", "old notification deliveries forgotten", { deliveries: forgotten });
      },
    ],
    ["workspace usage", () => workspaceUsageCron(env)], // rows vs R2 objects for a slice of the workspace, so usage converges
  ];
  const failed: string[] = [];
  for (const [step, run] of steps) {
    try {
      await run();
    } catch (error) {
      failed.push(step);
      log("error", "cron step failed", { step, error: error instanceof Error ? error.message : String(error) });
    }
  }
  if (failed.length > 0) throw new Error(`cron steps failed: ${failed.join(", ")} (each logged; the others ran)`);
}

/**
 * Tasks whose worker stopped heartbeating go back to pending, or fail once their attempts are
 * used up; those workers, and any not seen for 5 minutes, are marked lost.
 */
export async function expireTaskLeases(env: Env, now = new Date().toISOString()): Promise<{ returned: number; failed: number }> {
  const db = dbOf(env);
  const expired = await expireLeases(db, now);
  const failed = expired.filter((t) => t.status === "failed");
  const events = new Map<string, TeamEvent[]>();
  const add = (team: string, more: TeamEvent[]) => events.set(team, [...(events.get(team) ?? []), ...more]);
  for (const task of expired) add(task.teamId, [taskEvent(expiryEventType(task.status), task, { reason: "lease expired" })]);
  // A task that failed for good blocks its dependents, as a worker's last `fail` does.
  for (const team of new Set(failed.map((t) => t.teamId))) add(team, blockedEvents(await blockDependents(db, team, now), now));
  const lost = await markWorkersLost(db, expired, new Date(new Date(now).getTime() - LOST_AFTER_MS).toISOString());
  for (const worker of lost) add(worker.teamId, [workerEvent(worker, now)]);
  for (const [team, list] of events) await publishTeamEvents(env, team, list);
  if (expired.length > 0) log("info", "task leases expired", { returned: expired.length - failed.length, failed: failed.length, tasks: expired.map((t) => t.id).slice(0, 50) });
  return { returned: expired.length - failed.length, failed: failed.length };
}

/**
 * Open questions no attempt waits on are `withdrawn` and announced: the attempt that asked is
 * over (a later one asks anew). Not in the expiry's batch (expireLeases runs its own
 * statement), so this finds them by state: what a failed run left open, the next one withdraws.
 */
export async function withdrawMootQuestions(env: Env, now = new Date().toISOString()): Promise<number> {
  const withdrawn = await withdrawOrphanedQuestions(dbOf(env));
  const byTeam = new Map<string, typeof withdrawn>();
  for (const q of withdrawn) byTeam.set(q.teamId, [...(byTeam.get(q.teamId) ?? []), q]);
  for (const [team, rows] of byTeam) await publishTeamEvents(env, team, withdrawnEvents(rows, now));
  if (withdrawn.length > 0) log("info", "questions withdrawn", { questions: withdrawn.length });
  return withdrawn.length;
}
