import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type Db, dbOf } from "../src/db/client";
import { claimLimits, claimNextTask, failUnderLease, heldUnder, LEASE_CLEARED, updateUnderLease } from "../src/db/tasks";
import { countCompletion, recordClaim, selectWorker } from "../src/db/workers";
import { leaseExpiry, retryWaits } from "../src/domain/tasks";
import { utcDayStart } from "../src/domain/workers";
import { call, createTeam, json } from "./helpers";
import { claim, createTask } from "./task-helpers";
import { finish, setTeam } from "./worker-helpers";

/** The claim path's statements, below the routes: how SQLite runs them, and what they decide in SQL. */

type Statement = { toSQL(): { sql: string; params: unknown[] } };

/** SQLite's plan for the statement, one line per step (`EXPLAIN QUERY PLAN`, through D1). */
async function planOf(statement: Statement): Promise<string[]> {
  const { sql, params } = statement.toSQL();
  const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`)
    .bind(...params)
    .all<{ detail: string }>();
  return plan.results.map((step) => step.detail);
}

/** The route's completing update (src/routes/task-leases.ts), without usage. */
const updateUnderLeaseCompleting = (db: Db, teamId: string, id: string, leaseId: string, at: string) => updateUnderLease(db, teamId, id, leaseId, at, { status: "completed", ...LEASE_CLEARED, completedAt: at });

const teamIdOf = async (key: string) => (await json(await call("/v1/team", { key }))).id as string;

function claimRequest(teamId: string, workerId: string, now = new Date()) {
  return { teamId, role: "executor", workerId, leaseId: `lease_${crypto.randomUUID()}`, now: now.toISOString(), dayStart: utcDayStart(now), leaseExpiresAt: leaseExpiry(now) };
}

describe("task statements: plans", () => {
  it("a claim finds its own row by (team, worker, lease) in one probe, whatever the worker's history", async () => {
    const db = dbOf(env);
    const r = claimRequest("team_x", "w1");
    expect(await planOf(recordClaim(db, r.teamId, r.workerId, r.leaseId, r.now))).toEqual(["SEARCH c USING INDEX tasks_team_worker_lease (team_id=? AND worker_id=? AND lease_id=?)"]);
    const limits = await planOf(claimLimits(db, r));
    expect(limits).toContain("SEARCH h USING INDEX tasks_team_worker_lease (team_id=? AND worker_id=? AND lease_id=?)");
    // A worker's cost sums its attempts from the ledger's covering (team, worker) index.
    expect(await planOf(selectWorker(db, r.teamId, r.workerId))).toContain("SEARCH k USING COVERING INDEX task_costs_team_worker (team_id=? AND worker_id=?)");
    // A claim with a claim_id checks its lease id took nothing yet, by the same index.
    expect((await planOf(claimNextTask(db, { ...r, retryable: true }))).some((step) => /^SEARCH h USING (COVERING )?INDEX tasks_team_worker_lease \(team_id=\? AND worker_id=\? AND lease_id=\?\)/.test(step))).toBe(true);
    // A retried claim's earlier take is one probe too.
    expect(await planOf(heldUnder(db, r.teamId, r.workerId, r.leaseId, r.now))).toEqual(["SEARCH tasks USING INDEX tasks_team_worker_lease (team_id=? AND worker_id=? AND lease_id=?)"]);
    // Counting a completion reads the task and the worker by their keys.
    expect(await planOf(countCompletion(db, r.teamId, "task_x", r.leaseId, r.now))).toEqual(["SEARCH workers USING INDEX sqlite_autoindex_workers_1 (team_id=? AND id=?)", "SCALAR SUBQUERY 1", "SEARCH tasks USING INDEX sqlite_autoindex_tasks_1 (team_id=? AND id=?)"]);
  });

  it("the daily budget sums today's attempts from the ledger's covering index, in the claim and in the limits", async () => {
    const db = dbOf(env);
    const r = claimRequest("team_x", "w1");
    const spent = "SEARCH k USING COVERING INDEX task_costs_team_day (team_id=? AND day=?)";
    expect(await planOf(claimNextTask(db, r))).toContain(spent);
    expect(await planOf(claimLimits(db, r))).toContain(spent);
    for (const step of [...(await planOf(claimNextTask(db, r))), ...(await planOf(claimLimits(db, r)))]) expect(step).not.toMatch(/^SCAN (tasks|task_costs|[cderhk])\b/);
  });
});

describe("task statements: what the claim batch reads when it took nothing", () => {
  it("no limits row after a claim that took a task; after one that took nothing, the sums only of the limits that are set", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const teamId = await teamIdOf(k);
    const db = dbOf(env);
    const spent = await createTask(k);
    const held = await claim(k, "executor", "w1");
    await finish(k, spent.id, held?.lease.id ?? "", "complete", { cost_usd: 2.5 });
    await createTask(k, { title: "runs" });
    await createTask(k, { title: "waits" });
    const batch = (r: ReturnType<typeof claimRequest>) => db.batch([claimNextTask(db, r), recordClaim(db, r.teamId, r.workerId, r.leaseId, r.now), claimLimits(db, r)]);

    const [[took], [worker], limitsAfterClaim] = await batch(claimRequest(teamId, "w2"));
    expect(took?.title).toBe("runs");
    expect(worker).toMatchObject({ id: "w2", currentTask: took?.id });
    expect(limitsAfterClaim).toEqual([]);

    // Stopped by the budget: the limits are read after the claim, in its batch.
    await setTeam(k, { daily_budget_usd: 2, max_running: { executor: 5 } });
    const [[none], [noWorker], [limits]] = await batch(claimRequest(teamId, "w3"));
    expect([none, noWorker]).toEqual([undefined, undefined]);
    expect(limits).toEqual({ claimable: 1, dailyBudgetUsd: 2, spentTodayUsd: 2.5, maxRunning: 5, running: 1 });
    // No limits: nothing summed (2.5 spent and 1 running, read as 0), and the task is claimed.
    await setTeam(k, { daily_budget_usd: null, max_running: null });
    const [[last]] = await batch(claimRequest(teamId, "w4"));
    expect(last?.title).toBe("waits");
    const [[nothing], , [empty]] = await batch(claimRequest(teamId, "w5"));
    expect(nothing).toBeUndefined();
    expect(empty).toEqual({ claimable: 0, dailyBudgetUsd: null, spentTodayUsd: 0, maxRunning: null, running: 0 });
  });
});

describe("task statements: counting a completion", () => {
  it("counts only when the task's update completes it: a repeat within the same millisecond counts nothing", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const teamId = await teamIdOf(k);
    const db = dbOf(env);
    const task = await createTask(k);
    const held = await claim(k, "executor", "same-ms");
    const at = new Date().toISOString();
    // The route's batch, twice with one timestamp (a retried request landing in the same ms):
    // a check after the update (completed, at this time, by this worker) would pass twice.
    const complete = () => db.batch([countCompletion(db, teamId, task.id, held?.lease.id ?? "", at), updateUnderLeaseCompleting(db, teamId, task.id, held?.lease.id ?? "", at)]);
    const [[counted], [completed]] = await complete();
    expect(counted).toMatchObject({ id: "same-ms", tasksCompleted: 1, currentTask: null, status: "idle" });
    expect(completed).toMatchObject({ status: "completed", completedAt: at });
    expect(await complete()).toEqual([[], []]);
    expect((await selectWorker(db, teamId, "same-ms").get())?.worker.tasksCompleted).toBe(1);
  });
});

describe("task statements: a failed attempt decided in SQL", () => {
  it("picks the retry wait by the attempts it reads, or fails for good once they are used up", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const teamId = await teamIdOf(k);
    const db = dbOf(env);
    const now = new Date();
    const waits = retryWaits(now, () => 1);
    const cases: { attempts: number; maxAttempts: number; status: string; availableAt?: string }[] = [
      { attempts: 1, maxAttempts: 3, status: "pending", availableAt: waits[0] },
      { attempts: 3, maxAttempts: 5, status: "pending", availableAt: waits[2] },
      { attempts: 12, maxAttempts: 20, status: "pending", availableAt: waits[waits.length - 1] },
      { attempts: 5, maxAttempts: 5, status: "failed" },
    ];
    for (const c of cases) {
      const task = await createTask(k, { max_attempts: c.maxAttempts });
      const held = await claim(k);
      expect(held?.id).toBe(task.id);
      await env.DB.prepare("UPDATE tasks SET attempts = ? WHERE id = ?").bind(c.attempts, task.id).run();
      const [row] = await failUnderLease(db, teamId, task.id, held?.lease.id ?? "", now.toISOString(), { cost_usd: 0.1 }, waits);
      const label = JSON.stringify(c);
      expect(row?.status, label).toBe(c.status);
      expect(row?.leaseId, label).toBeNull();
      expect(row?.costUsd, label).toBe(0.1);
      if (c.status === "failed") {
        expect(row?.completedAt, label).toBe(now.toISOString());
        expect(row?.availableAt, label).toBe(task.available_at);
      } else {
        expect(row?.availableAt, label).toBe(c.availableAt);
        expect(row?.completedAt, label).toBeNull();
      }
      // Under a lease it no longer holds, it changes nothing.
      expect(await failUnderLease(db, teamId, task.id, held?.lease.id ?? "", now.toISOString(), {}, waits)).toEqual([]);
    }
  });
});
