import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { SENTINEL_PREFIX } from "../src/domain/sentinel";
import worker from "../src/index";
import type { LeasedTaskResponse, TaskResponse } from "../src/lib/task-schemas";
import { call, createKey, createTeam, json } from "./helpers";
import { claim, createTask, getTask, leaseCall, past, setTimes } from "./task-helpers";

const MINUTE = 60_000;
const runCron = () => worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, createExecutionContext());
const msFromNow = (iso: string) => new Date(iso).getTime() - Date.now();

describe("claims: order and leases", () => {
  it("claims the most urgent first, then the oldest, only of the asked role, under a 15-minute lease", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    await createTask(agent, { title: "low", priority: "low" });
    await createTask(agent, { title: "normal" });
    await createTask(agent, { title: "high", priority: "high" });
    await createTask(agent, { title: "critical A", priority: "critical" });
    const criticalB = await createTask(agent, { title: "critical B", priority: "critical" });
    await createTask(agent, { title: "for planners", role: "planner", priority: "critical" });
    // B is made the older by its creation time, whatever the order the rows were written in.
    await setTimes(criticalB.id, { created_at: past(MINUTE) });

    const first = await claim(agent, "executor", "exec-alpha");
    expect(first).toMatchObject({ id: criticalB.id, status: "claimed", attempts: 1, worker_id: "exec-alpha", claimed_at: expect.any(String), lease: { id: expect.stringMatching(/^lease_/), expires_at: expect.any(String) } });
    expect(first?.lease.expires_at).toBe(first?.lease_expires_at);
    expect(msFromNow(first?.lease.expires_at ?? "")).toBeGreaterThan(14 * MINUTE);
    expect(msFromNow(first?.lease.expires_at ?? "")).toBeLessThanOrEqual(15 * MINUTE);
    const order: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) order.push((await claim(agent, "executor"))?.title);
    expect(order).toEqual(["critical A", "high", "normal", "low", undefined]);
    expect((await claim(agent, "planner"))?.title).toBe("for planners");
    // The lease id is the holder's alone: reads never show it.
    expect(JSON.stringify(await getTask(agent, criticalB.id))).not.toContain(first?.lease.id);
  });
});

describe("claims: concurrency", () => {
  it("60 concurrent claims over 20 tasks never give one task twice", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const made = await Promise.all(Array.from({ length: 20 }, (_, i) => createTask(agent, { title: `t${i}`, priority: (["critical", "high", "normal", "low"] as const)[i % 4] })));
    const responses = await Promise.all(Array.from({ length: 60 }, (_, i) => call("/v1/tasks/claim", { method: "POST", key: agent, json: { worker_id: `w${i}`, role: "executor" } })));
    const claimed: LeasedTaskResponse[] = [];
    for (const res of responses) {
      if (res.status === 204) {
        expect(await res.text()).toBe("");
        continue;
      }
      expect(res.status).toBe(200);
      claimed.push(await json<LeasedTaskResponse>(res));
    }
    expect(claimed).toHaveLength(20);
    expect(new Set(claimed.map((t) => t.id)).size).toBe(20);
    expect(claimed.map((t) => t.id).sort()).toEqual(made.map((t) => t.id).sort());
    expect(new Set(claimed.map((t) => t.lease.id)).size).toBe(20);
    // Each task is held by the worker its claim answered, once.
    for (const t of claimed) expect(await getTask(agent, t.id)).toMatchObject({ status: "claimed", worker_id: t.worker_id, attempts: 1 });
  });
});

describe("claims: a retried claim (claim_id)", () => {
  const claimWith = async (key: string, workerId: string, claimId: string) => {
    const res = await call("/v1/tasks/claim", { method: "POST", key, json: { worker_id: workerId, role: "executor", claim_id: claimId } });
    const text = await res.text();
    return { status: res.status, task: text ? (JSON.parse(text) as LeasedTaskResponse) : null };
  };

  it("a claim sent again with its claim_id gets the task its first try took, not a second one; a new claim_id claims anew", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const a = await createTask(agent, { title: "a", priority: "high" });
    const b = await createTask(agent, { title: "b" });
    const id = "c".repeat(10) + crypto.randomUUID().replaceAll("-", "");
    const first = await claimWith(agent, "w1", id);
    expect(first).toMatchObject({ status: 200, task: { id: a.id, attempts: 1 } });
    // The answer was lost; the worker sends the same claim again, even concurrently.
    const again = await Promise.all([claimWith(agent, "w1", id), claimWith(agent, "w1", id)]);
    for (const r of again) expect(r).toMatchObject({ status: 200, task: { id: a.id, attempts: 1, lease: { id: first.task?.lease.id } } });
    expect(await getTask(agent, b.id)).toMatchObject({ status: "pending", attempts: 0 });
    // The lease works as any other.
    expect((await json(await leaseCall(agent, a.id, "heartbeat", { lease_id: first.task?.lease.id }))).status).toBe("running");
    // Another worker with the same claim_id is another claim.
    expect(await claimWith(agent, "w2", id)).toMatchObject({ status: 200, task: { id: b.id } });
    // Once the task is done, the old claim_id holds nothing: nothing left to claim is 204.
    expect((await json(await leaseCall(agent, a.id, "complete", { lease_id: first.task?.lease.id }))).status).toBe("completed");
    expect(await claimWith(agent, "w1", id)).toEqual({ status: 204, task: null });
  });

  it("a claim retried after its lease expired (the cron not run yet) claims anew, and the worker shows the new task", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const a = await createTask(agent, { title: "a", priority: "high" });
    const b = await createTask(agent, { title: "b" });
    const id = "e".repeat(10) + crypto.randomUUID().replaceAll("-", "");
    expect(await claimWith(agent, "w1", id)).toMatchObject({ status: 200, task: { id: a.id } });
    await setTimes(a.id, { lease_expires_at: past() });
    const again = await claimWith(agent, "w1", id);
    expect(again).toMatchObject({ status: 200, task: { id: b.id, status: "claimed", attempts: 1 } });
    expect(await json(await call("/v1/workers/w1", { key: agent }))).toMatchObject({ status: "working", current_task: b.id });
    // The new lease works; the expired one on the first task does not.
    expect((await leaseCall(agent, b.id, "heartbeat", { lease_id: again.task?.lease.id })).status).toBe(200);
    expect((await leaseCall(agent, a.id, "heartbeat", { lease_id: again.task?.lease.id })).status).toBe(409);
  });

  it("a claim_id that is not 16–100 letters, digits, _ or - is 400", async () => {
    const team = await createTeam();
    for (const bad of ["short", "x".repeat(101), "has spaces in it!!!!"]) {
      const res = await call("/v1/tasks/claim", { method: "POST", key: team.api_key, json: { worker_id: "w1", role: "executor", claim_id: bad } });
      expect(res.status).toBe(400);
      expect(await res.text()).toContain("claim_id");
    }
  });
});

describe("leases: heartbeat, complete, stale and foreign leases", () => {
  it("a heartbeat extends the lease and marks the task running; the cron leaves a live lease alone", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const task = await createTask(agent);
    const held = await claim(agent);
    // Nearly expired: a heartbeat gives it 15 minutes from now again.
    await setTimes(task.id, { lease_expires_at: new Date(Date.now() + 5_000).toISOString() });
    const beat = await leaseCall(agent, task.id, "heartbeat", { lease_id: held?.lease.id });
    expect(beat.status).toBe(200);
    const extended = await json<LeasedTaskResponse>(beat);
    expect(extended).toMatchObject({ id: task.id, status: "running", lease: { id: held?.lease.id } });
    expect(msFromNow(extended.lease.expires_at)).toBeGreaterThan(14 * MINUTE);
    await runCron();
    expect(await getTask(agent, task.id)).toMatchObject({ status: "running", attempts: 1 });
  });

  it("completes with the result, cost, tokens and duration; the lease then is spent", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const task = await createTask(agent);
    const held = await claim(agent);
    const done = await leaseCall(agent, task.id, "complete", { lease_id: held?.lease.id, result: "# Done\nAll green.", cost_usd: 0.42, tokens: 12_345, duration_ms: 65_000 });
    expect(done.status).toBe(200);
    expect(await json(done)).toMatchObject({ status: "completed", result: "# Done\nAll green.", cost_usd: 0.42, tokens: 12_345, duration_ms: 65_000, lease_expires_at: null, completed_at: expect.any(String), worker_id: "w1" });
    const again = await leaseCall(agent, task.id, "complete", { lease_id: held?.lease.id });
    expect(again.status).toBe(409);
    expect((await json(again)).detail).toContain("completed");
  });

  it("a worker whose lease expired cannot heartbeat, fail or complete, even once another worker holds the task", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const task = await createTask(agent);
    const other = await createTask(agent, { title: "another" });
    const slow = await claim(agent, "executor", "slow");
    expect(slow?.id).toBe(task.id);
    await setTimes(task.id, { lease_expires_at: past() });
    // Expired, not yet swept: already stale.
    for (const action of ["heartbeat", "complete", "fail"] as const) {
      const res = await leaseCall(agent, task.id, action, { lease_id: slow?.lease.id });
      expect(res.status, action).toBe(409);
      expect((await json(res)).detail).toContain("expired");
    }
    await runCron();
    const fast = await claim(agent, "executor", "fast");
    expect(fast).toMatchObject({ id: task.id, worker_id: "fast", attempts: 2 });
    const late = await leaseCall(agent, task.id, "complete", { lease_id: slow?.lease.id, result: "late" });
    expect(late.status).toBe(409);
    expect((await json(late)).detail).toContain("not this task's current one");
    // A lease of another task, or a made-up one, is foreign here.
    const otherHeld = await claim(agent, "executor", "third");
    expect(otherHeld?.id).toBe(other.id);
    for (const lease_id of [otherHeld?.lease.id, "lease_made_up"]) {
      const res = await leaseCall(agent, task.id, "complete", { lease_id });
      expect(res.status).toBe(409);
      await res.json();
    }
    expect(await getTask(agent, task.id)).toMatchObject({ status: "claimed", worker_id: "fast", result: null });
    const done = await leaseCall(agent, task.id, "complete", { lease_id: fast?.lease.id });
    expect(done.status).toBe(200);
    expect(await json(done)).toMatchObject({ status: "completed", worker_id: "fast" });
  });
});

describe("retries", () => {
  it("a failed attempt waits out an exponential, jittered backoff, is claimed again, and fails for good after max_attempts", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const task = await createTask(agent, { max_attempts: 2 });
    const dependent = await createTask(agent, { title: "after it", depends_on: [task.id] });

    const first = await claim(agent);
    const failed = await leaseCall(agent, task.id, "fail", { lease_id: first?.lease.id, result: "rate limited", cost_usd: 0.1, tokens: 100, duration_ms: 1000 });
    expect(failed.status).toBe(200);
    const back = await json<TaskResponse>(failed);
    expect(back).toMatchObject({ status: "pending", attempts: 1, result: "rate limited", cost_usd: 0.1, lease_expires_at: null, completed_at: null });
    // Attempt 1 waits between 1 and 30 seconds.
    expect(msFromNow(back.available_at)).toBeGreaterThan(0);
    expect(msFromNow(back.available_at)).toBeLessThanOrEqual(30_000);
    expect(await claim(agent)).toBeNull();
    // Back in the queue, it blocks nothing.
    expect(await getTask(agent, dependent.id)).toMatchObject({ status: "pending", blocked_by: null });

    await setTimes(task.id, { available_at: past() });
    const second = await claim(agent);
    expect(second).toMatchObject({ id: task.id, attempts: 2 });
    const final = await leaseCall(agent, task.id, "fail", { lease_id: second?.lease.id, result: "still rate limited", cost_usd: 0.25, tokens: 50, duration_ms: 500 });
    expect(await json(final)).toMatchObject({ status: "failed", attempts: 2, result: "still rate limited", cost_usd: 0.35, tokens: 150, duration_ms: 1500, completed_at: expect.any(String) });
    await setTimes(task.id, { available_at: past() });
    expect(await claim(agent)).toBeNull();
    expect(await getTask(agent, dependent.id)).toMatchObject({ status: "blocked", blocked_by: task.id });
  });
});

describe("cron: expired leases", () => {
  it("returns a task whose lease expired to pending, counting the attempt, then fails it once attempts are used up", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const task = await createTask(agent, { max_attempts: 2 });
    const dependent = await createTask(agent, { title: "after it", depends_on: [task.id] });

    await claim(agent, "executor", "vanished");
    await setTimes(task.id, { lease_expires_at: past() });
    await runCron();
    expect(await getTask(agent, task.id)).toMatchObject({ status: "pending", attempts: 1, lease_expires_at: null, worker_id: "vanished" });
    expect(msFromNow((await getTask(agent, task.id)).available_at)).toBeLessThanOrEqual(0);

    const again = await claim(agent, "executor", "vanished-too");
    expect(again).toMatchObject({ id: task.id, attempts: 2 });
    await setTimes(task.id, { lease_expires_at: past() });
    await runCron();
    expect(await getTask(agent, task.id)).toMatchObject({ status: "failed", attempts: 2, completed_at: expect.any(String), lease_expires_at: null });
    expect(await getTask(agent, dependent.id)).toMatchObject({ status: "blocked", blocked_by: task.id });
    expect(await claim(agent)).toBeNull();
  });
});

describe("the cron: each step on its own", () => {
  it("a sentinel listing that fails (R2 for a moment) is logged, and leases still expire that minute; the run reports the failure", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const task = await createTask(agent);
    await claim(agent, "executor", "vanished");
    await setTimes(task.id, { lease_expires_at: past() });
    // The bucket as bound, except that listing the sentinels throws.
    const bucket = new Proxy(env.BUCKET, {
      get(target, name) {
        const value = Reflect.get(target, name, target);
        if (name !== "list") return typeof value === "function" ? value.bind(target) : value;
        return (options?: R2ListOptions) => (options?.prefix?.startsWith(SENTINEL_PREFIX) ? Promise.reject(new Error("R2 list: internal error")) : target.list(options));
      },
    });
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      await expect(worker.scheduled(createScheduledController({ cron: "* * * * *" }), { ...env, BUCKET: bucket }, createExecutionContext())).rejects.toThrow(/cron steps failed: sentinel sweep \(/);
      const lines = errors.mock.calls.map((c) => JSON.parse(String(c[0])) as Record<string, unknown>);
      expect(lines).toContainEqual(expect.objectContaining({ level: "error", msg: "cron step failed", step: "sentinel sweep", error: "R2 list: internal error" }));
    } finally {
      errors.mockRestore();
    }
    expect(await getTask(agent, task.id)).toMatchObject({ status: "pending", attempts: 1, lease_expires_at: null });
  });
});
