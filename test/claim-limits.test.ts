import { describe, expect, it } from "vitest";
import { secondsUntilUtcMidnight } from "../src/domain/workers";
import type { LeasedTaskResponse } from "../src/lib/task-schemas";
import { call, createTeam, expectProblem, json } from "./helpers";
import { claim, createTask } from "./task-helpers";
import { finish, isoDaysAgo, redateCosts, rewrite, setTeam } from "./worker-helpers";

const claimCall = (key: string, worker: string, role = "executor") => call("/v1/tasks/claim", { method: "POST", key, json: { worker_id: worker, role } });

/** Sorts concurrent claim answers into claimed tasks, 204s and 429 problems (every body read). */
async function sortAnswers(responses: Response[]) {
  const claimed: LeasedTaskResponse[] = [];
  const refused: { detail: string; retryAfter: string | null }[] = [];
  let empty = 0;
  for (const res of responses) {
    if (res.status === 200) claimed.push(await json<LeasedTaskResponse>(res));
    else if (res.status === 204) {
      expect(await res.text()).toBe("");
      empty++;
    } else refused.push({ retryAfter: res.headers.get("retry-after"), detail: (await expectProblem(res, 429)).detail });
  }
  return { claimed, refused, empty };
}

describe("claims: with no limits set", () => {
  it("is 204 with nothing claimable, whatever was spent today or is running; a limit of another role changes nothing", async () => {
    const team = await createTeam();
    const k = team.api_key;
    expect(await claim(k)).toBeNull();
    const spent = await createTask(k);
    await createTask(k, { title: "later", depends_on: [spent.id] });
    await createTask(k, { title: "plan", role: "planner" });
    const held = await claim(k, "executor", "w1");
    await finish(k, spent.id, held?.lease.id ?? "", "complete", { cost_usd: 1000 });
    const running = await claim(k, "executor", "w2");
    expect(running?.title).toBe("later");
    // Nothing left for executors: 204, not 429, with $1,000 spent today and one running.
    const { claimed, refused, empty } = await sortAnswers(await Promise.all(Array.from({ length: 4 }, (_, i) => claimCall(k, `w${i + 3}`))));
    expect([claimed.length, refused.length, empty]).toEqual([0, 0, 4]);
    await setTeam(k, { max_running: { planner: 0 } });
    expect(await claim(k)).toBeNull();
    await createTask(k, { title: "more" });
    expect((await claim(k, "executor", "w9"))?.title).toBe("more");
    expect((await expectProblem(await claimCall(k, "w10", "planner"), 429)).detail).toContain("max_running for planner is 0");
  });
});

describe("claims: a role's max_running", () => {
  it("10 concurrent claims under max_running 2 claim 2 tasks; the rest are 429 naming the limit while tasks wait", async () => {
    const team = await createTeam();
    const k = team.api_key;
    await setTeam(k, { max_running: { executor: 2 } });
    for (let i = 0; i < 5; i++) await createTask(k, { title: `t${i}` });
    await createTask(k, { title: "plan", role: "planner" });

    const { claimed, refused, empty } = await sortAnswers(await Promise.all(Array.from({ length: 10 }, (_, i) => claimCall(k, `w${i}`))));
    expect(claimed).toHaveLength(2);
    expect(empty).toBe(0);
    expect(refused).toHaveLength(8);
    for (const r of refused) {
      expect(r.detail).toContain("max_running for executor is 2");
      expect(r.retryAfter).toBe("30");
    }
    // Other roles have no limit.
    expect((await claim(k, "planner"))?.title).toBe("plan");
    // Ending one frees a slot for exactly one more.
    await finish(k, claimed[0]?.id ?? "", claimed[0]?.lease.id ?? "", "complete");
    expect(await claim(k, "executor", "w-next")).toMatchObject({ status: "claimed", worker_id: "w-next" });
    await expectProblem(await claimCall(k, "w-late"), 429);
  });

  it("is 204, not 429, when the limit is reached but nothing is left to claim", async () => {
    const team = await createTeam();
    const k = team.api_key;
    await setTeam(k, { max_running: { executor: 2 } });
    await createTask(k);
    await createTask(k);
    const { claimed, refused, empty } = await sortAnswers(await Promise.all(Array.from({ length: 10 }, (_, i) => claimCall(k, `w${i}`))));
    expect(claimed).toHaveLength(2);
    expect(refused).toHaveLength(0);
    expect(empty).toBe(8);
  });

  it("a limit of 0 stops the role; removing the limit lets it claim", async () => {
    const team = await createTeam();
    const k = team.api_key;
    await setTeam(k, { max_running: { executor: 0 } });
    await createTask(k);
    expect((await expectProblem(await claimCall(k, "w1"), 429)).detail).toContain("max_running for executor is 0");
    await setTeam(k, { max_running: { executor: null } });
    expect(await claim(k)).not.toBeNull();
  });
});

describe("claims: the daily budget", () => {
  it("stops claims once today's completed and failed tasks cost the budget, until the next UTC midnight", async () => {
    const team = await createTeam();
    const k = team.api_key;
    await setTeam(k, { daily_budget_usd: 1 });
    const done = await createTask(k, { title: "done", priority: "critical" });
    const failed = await createTask(k, { title: "failed", priority: "high", max_attempts: 1 });
    await createTask(k, { title: "waiting" });

    const first = await claim(k);
    expect(first?.id).toBe(done.id);
    await finish(k, done.id, first?.lease.id ?? "", "complete", { cost_usd: 0.6 });
    // $0.60 of $1 spent: still claimable.
    const second = await claim(k);
    expect(second?.id).toBe(failed.id);
    expect((await finish(k, failed.id, second?.lease.id ?? "", "fail", { cost_usd: 0.5 })).status).toBe("failed");

    const res = await claimCall(k, "w1");
    const retryAfter = Number(res.headers.get("retry-after"));
    const problem = await expectProblem(res, 429);
    expect(problem.detail).toContain("daily budget of $1.00 spent");
    const expected = secondsUntilUtcMidnight(new Date());
    expect(retryAfter).toBeGreaterThan(expected - 10);
    expect(retryAfter).toBeLessThanOrEqual(expected);

    // The next day (the costs were yesterday's) claims work again.
    await redateCosts(done.id, isoDaysAgo(1).slice(0, 10));
    await redateCosts(failed.id, isoDaysAgo(1).slice(0, 10));
    expect((await claim(k))?.title).toBe("waiting");
  });

  it("sums money to the cent: $0.70 and $0.10 spent stop a $0.80 budget, and every sum shows 0.8", async () => {
    const team = await createTeam();
    const k = team.api_key;
    await setTeam(k, { daily_budget_usd: 0.8 });
    const task = await createTask(k, { title: "twice", priority: "critical", max_attempts: 3 });
    await createTask(k, { title: "waiting" });
    const first = await claim(k);
    expect((await finish(k, task.id, first?.lease.id ?? "", "fail", { cost_usd: 0.7 })).status).toBe("pending");
    await rewrite("tasks", "available_at", new Date(Date.now() - 1000).toISOString(), { id: task.id });
    const second = await claim(k);
    expect(second?.id).toBe(task.id);
    // In floating point 0.7 + 0.1 is 0.7999999999999999: under the budget, and shown so.
    expect((await finish(k, task.id, second?.lease.id ?? "", "complete", { cost_usd: 0.1 })).cost_usd).toBe(0.8);
    expect((await expectProblem(await claimCall(k, "w1"), 429)).detail).toContain("daily budget of $0.80 spent");
    const day = await json<{ items: { cost_usd: number }[] }>(await call("/v1/costs?by=day", { key: k }));
    expect(day.items.map((g) => g.cost_usd)).toEqual([0.8]);
    const workers = await json<{ items: { cost_usd: number }[] }>(await call("/v1/workers", { key: k }));
    expect(workers.items.map((w) => w.cost_usd)).toEqual([0.8]);
  });

  it("counts what every attempt spent today: one that failed and went back to the queue, one released, and a task a person retried", async () => {
    const team = await createTeam();
    const k = team.api_key;
    await setTeam(k, { daily_budget_usd: 1 });
    const flaky = await createTask(k, { title: "flaky", priority: "critical", max_attempts: 3 });
    await createTask(k, { title: "waiting" });
    const first = await claim(k);
    expect(first?.id).toBe(flaky.id);
    // $50 spent by an attempt that failed: the task is pending again, but the money is gone.
    expect((await finish(k, flaky.id, first?.lease.id ?? "", "fail", { cost_usd: 50 })).status).toBe("pending");
    expect((await expectProblem(await claimCall(k, "w1"), 429)).detail).toContain("($50.00 today)");

    // A person's retry of a task that failed for good does not give its spend back.
    const t2 = await createTeam();
    const k2 = t2.api_key;
    await setTeam(k2, { daily_budget_usd: 1 });
    const once = await createTask(k2, { title: "once", priority: "critical", max_attempts: 1 });
    await createTask(k2, { title: "next" });
    const held = await claim(k2);
    expect((await finish(k2, once.id, held?.lease.id ?? "", "fail", { cost_usd: 2 })).status).toBe("failed");
    await expectProblem(await claimCall(k2, "w1"), 429);
    const retried = await call(`/v1/tasks/${once.id}/retry`, { method: "POST", key: k2 });
    expect(retried.status).toBe(200);
    await retried.text();
    await expectProblem(await claimCall(k2, "w1"), 429);

    // A released attempt's spend counts too.
    const t3 = await createTeam();
    const k3 = t3.api_key;
    await setTeam(k3, { daily_budget_usd: 1 });
    const r = await createTask(k3, { title: "released" });
    const h3 = await claim(k3);
    const released = await call(`/v1/tasks/${r.id}/release`, { method: "POST", key: k3, json: { lease_id: h3?.lease.id, cost_usd: 1.5 } });
    expect((await json(released)).cost_usd).toBe(1.5);
    await expectProblem(await claimCall(k3, "w1"), 429);
  });

  it("is 204 when the budget is spent but nothing is claimable; no budget means no stop", async () => {
    const team = await createTeam();
    const k = team.api_key;
    await setTeam(k, { daily_budget_usd: 0 });
    expect(await claim(k)).toBeNull();
    await createTask(k);
    await expectProblem(await claimCall(k, "w1"), 429);
    await setTeam(k, { daily_budget_usd: null });
    expect(await claim(k)).not.toBeNull();
  });
});
