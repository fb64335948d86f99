import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { call, createTeam, json } from "./helpers";
import { claim, createTask, getTask, leaseCall, past, setTimes } from "./task-helpers";
import { finish, setTeam } from "./worker-helpers";

// Money an agent spent is spent, even when its report arrives after its lease ended: the
// report is refused (409, the task is no longer its), but the spend counts, once.

const runCron = () => worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, createExecutionContext());
const costsBy = async (key: string, by: string) => (await json<{ items: Array<{ key: string; cost_usd: number; tokens: number }> }>(await call(`/v1/costs?by=${by}`, { key }))).items;

describe("costs: a report after the lease ended", () => {
  it("an attempt whose lease expired and whose task was claimed again still has its spend counted, once, and the 409 says so", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k, { max_attempts: 3 });
    const first = await claim(k, "executor", "w1");
    expect(first?.id).toBe(task.id);
    // w1 goes quiet; the cron returns the task to the queue, and w2 takes it.
    await setTimes(task.id, { lease_expires_at: past() });
    await runCron();
    expect(await getTask(k, task.id)).toMatchObject({ status: "pending" });
    const second = await claim(k, "executor", "w2");
    expect(second?.id).toBe(task.id);

    // w1 finally reports what its agent spent.
    const late = await leaseCall(k, task.id, "complete", { lease_id: first?.lease.id, cost_usd: 1.5, tokens: 100 });
    expect(late.status).toBe(409);
    expect((await json(late)).detail).toContain("The cost it reported was counted");
    // Its retry (the answer lost) changes nothing, and says the attempt's cost is on record.
    const again = await leaseCall(k, task.id, "fail", { lease_id: first?.lease.id, cost_usd: 1.5, tokens: 100 });
    expect(again.status).toBe(409);
    const againDetail = (await json(again)).detail as string;
    expect(againDetail).not.toContain("The cost it reported was counted");
    expect(againDetail).toContain("already counted");
    // A heartbeat under the old lease reports nothing, so says nothing of cost.
    const beat = await leaseCall(k, task.id, "heartbeat", { lease_id: first?.lease.id });
    expect(beat.status).toBe(409);
    expect((await json(beat)).detail).not.toContain("counted");
    // The task is still w2's, running on its lease, its totals holding w1's spend.
    expect(await getTask(k, task.id)).toMatchObject({ status: "claimed", worker_id: "w2", cost_usd: 1.5, tokens: 100 });

    const done = await finish(k, task.id, second?.lease.id ?? "", "complete", { cost_usd: 2, tokens: 50 });
    expect(done).toMatchObject({ status: "completed", cost_usd: 3.5, tokens: 150 });
    expect(await costsBy(k, "worker")).toEqual([
      { key: "w1", cost_usd: 1.5, tokens: 100, duration_ms: 0, tasks: 1 },
      { key: "w2", cost_usd: 2, tokens: 50, duration_ms: 0, tasks: 1 },
    ]);
    expect(await costsBy(k, "task")).toEqual([{ key: task.id, cost_usd: 3.5, tokens: 150, duration_ms: 0, tasks: 1 }]);
  });

  it("a late report counts toward the daily budget: the next claim is stopped", async () => {
    const team = await createTeam();
    const k = team.api_key;
    await setTeam(k, { daily_budget_usd: 1 });
    const task = await createTask(k, { max_attempts: 3 });
    const held = await claim(k, "executor", "w1");
    await setTimes(task.id, { lease_expires_at: past() });
    await runCron();
    const late = await leaseCall(k, task.id, "release", { lease_id: held?.lease.id, cost_usd: 1.25 });
    expect(late.status).toBe(409);
    await late.text();
    const stopped = await call("/v1/tasks/claim", { method: "POST", key: k, json: { worker_id: "w2", role: "executor" } });
    expect(stopped.status).toBe(429);
    expect((await json(stopped)).detail).toMatch(/budget/i);
  });

  it("a lease id the task never had, or another team's, counts nothing", async () => {
    const team = await createTeam();
    const other = await createTeam();
    const k = team.api_key;
    const task = await createTask(k);
    const held = await claim(k, "executor", "w1");
    const made = await leaseCall(k, task.id, "complete", { lease_id: "lease_never_given_out", cost_usd: 9 });
    expect(made.status).toBe(409);
    expect((await json(made)).detail).not.toContain("counted");
    const foreign = await leaseCall(other.api_key, task.id, "complete", { lease_id: held?.lease.id, cost_usd: 9 });
    expect(foreign.status).toBe(404);
    await foreign.text();
    expect(await costsBy(k, "task")).toEqual([]);
    expect(await costsBy(other.api_key, "task")).toEqual([]);
    expect(await getTask(k, task.id)).toMatchObject({ cost_usd: 0 });
  });
});
