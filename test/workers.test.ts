import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import type { WorkerResponse } from "../src/lib/task-schemas";
import { call, createKey, createTeam, errorPaths, expectProblem, json } from "./helpers";
import { claim, createTask, leaseCall, past, setTimes } from "./task-helpers";
import { finish, getWorker, rewrite, workerHeartbeat } from "./worker-helpers";

const MINUTE = 60_000;
const runCron = () => worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, createExecutionContext());
type WorkerList = { items: WorkerResponse[]; next_cursor: string | null };

describe("workers: heartbeats and the list", () => {
  it("a heartbeat creates the worker, a later one updates it; the list pages by id", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const reader = await createKey(team.api_key, ["read"]);
    const before = new Date().toISOString();
    const first = await workerHeartbeat(agent, "exec-b", { role: "executor", status: "idle" });
    expect(first).toEqual({ id: "exec-b", role: "executor", status: "idle", current_task: null, tasks_completed: 0, last_seen_at: expect.any(String), cost_usd: 0, created_at: first.last_seen_at, version: 0 });
    expect(first.last_seen_at >= before).toBe(true);
    const task = await createTask(agent);
    const second = await workerHeartbeat(agent, "exec-b", { role: "executor", status: "working", current_task: task.id });
    expect(second).toMatchObject({ status: "working", current_task: task.id, created_at: first.created_at });
    await workerHeartbeat(agent, "exec-a", { role: "executor", status: "waiting" });
    await workerHeartbeat(agent, "plan-1", { role: "planner", status: "idle" });

    const page1 = await json<WorkerList>(await call("/v1/workers?limit=2", { key: reader }));
    expect(page1.items.map((w) => w.id)).toEqual(["exec-a", "exec-b"]);
    expect(page1.items[0]).toMatchObject({ role: "executor", status: "waiting" });
    const page2 = await json<WorkerList>(await call(`/v1/workers?limit=2&cursor=${page1.next_cursor}`, { key: reader }));
    expect(page2).toEqual({ items: [expect.objectContaining({ id: "plan-1", role: "planner" })], next_cursor: null });
    expect(await getWorker(reader, "exec-b")).toEqual(second);
  });

  it("a claim records an unknown worker as working on the task; completing counts it and adds its cost", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const a = await createTask(k, { title: "a" });
    const b = await createTask(k, { title: "b" });
    const held = await claim(k, "executor", "exec-new");
    expect(await getWorker(k, "exec-new")).toMatchObject({ role: "executor", status: "working", current_task: a.id, tasks_completed: 0, cost_usd: 0 });
    await finish(k, a.id, held?.lease.id ?? "", "complete", { cost_usd: 0.25, tokens: 100 });
    expect(await getWorker(k, "exec-new")).toMatchObject({ status: "idle", current_task: null, tasks_completed: 1, cost_usd: 0.25 });
    // A failed attempt's cost counts too, though nothing completed.
    const next = await claim(k, "executor", "exec-new");
    expect(next?.id).toBe(b.id);
    await finish(k, b.id, next?.lease.id ?? "", "fail", { cost_usd: 0.5 });
    expect(await getWorker(k, "exec-new")).toMatchObject({ tasks_completed: 1, cost_usd: 0.75 });
  });
});

describe("workers: completions count once, to the lease holder", () => {
  it("a complete under a stale lease counts for neither worker, before or after another claimed the task", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k);
    const slow = await claim(k, "executor", "slow");
    await setTimes(task.id, { lease_expires_at: past() });
    // Expired, not yet swept.
    await expectProblem(await leaseCall(k, task.id, "complete", { lease_id: slow?.lease.id, cost_usd: 1 }), 409);
    await runCron();
    const fast = await claim(k, "executor", "fast");
    expect(fast?.id).toBe(task.id);
    await expectProblem(await leaseCall(k, task.id, "complete", { lease_id: slow?.lease.id, cost_usd: 1 }), 409);
    expect(await getWorker(k, "slow")).toMatchObject({ tasks_completed: 0 });
    expect(await getWorker(k, "fast")).toMatchObject({ status: "working", current_task: task.id, tasks_completed: 0 });
    // The holder's complete counts; the same complete again is 409 and counts nothing more.
    await finish(k, task.id, fast?.lease.id ?? "", "complete");
    await expectProblem(await leaseCall(k, task.id, "complete", { lease_id: fast?.lease.id }), 409);
    expect(await getWorker(k, "fast")).toMatchObject({ status: "idle", current_task: null, tasks_completed: 1 });
    expect(await getWorker(k, "slow")).toMatchObject({ tasks_completed: 0 });
  });

  it("concurrent completes under one lease (a client's retries) complete the task once and count it once", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k);
    const held = await claim(k, "executor", "eager");
    const answers = await Promise.all(Array.from({ length: 6 }, () => leaseCall(k, task.id, "complete", { lease_id: held?.lease.id, cost_usd: 0.5 })));
    const statuses = await Promise.all(answers.map(async (r) => (await r.text(), r.status)));
    expect(statuses.sort()).toEqual([200, 409, 409, 409, 409, 409]);
    expect(await getWorker(k, "eager")).toMatchObject({ tasks_completed: 1, cost_usd: 0.5 });
  });
});

describe("workers: the cron marks them lost", () => {
  it("a worker whose lease expired, and one not seen for 5 minutes, become lost; a heartbeat brings one back", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k);
    await claim(k, "executor", "holder");
    await workerHeartbeat(k, "silent", { role: "executor", status: "idle" });
    await workerHeartbeat(k, "recent", { role: "executor", status: "idle" });
    await setTimes(task.id, { lease_expires_at: past() });
    await rewrite("workers", "last_seen_at", new Date(Date.now() - 6 * MINUTE).toISOString(), { id: "silent" });
    await rewrite("workers", "last_seen_at", new Date(Date.now() - 4 * MINUTE).toISOString(), { id: "recent" });
    await runCron();

    expect((await getWorker(k, "holder")).status).toBe("lost");
    expect((await getWorker(k, "silent")).status).toBe("lost");
    expect((await getWorker(k, "recent")).status).toBe("idle");
    expect(await workerHeartbeat(k, "silent", { role: "executor", status: "working" })).toMatchObject({ status: "working" });
  });

  it("a worker that only heartbeats its task's lease (the curl flow) is seen alive, and one marked lost works again", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k);
    const held = await claim(k, "executor", "curl-worker");
    const longAgo = new Date(Date.now() - 35 * MINUTE).toISOString();
    await rewrite("workers", "last_seen_at", longAgo, { id: "curl-worker" });
    const beat = await leaseCall(k, task.id, "heartbeat", { lease_id: held?.lease.id });
    expect(beat.status).toBe(200);
    await beat.json();
    expect((await getWorker(k, "curl-worker")).last_seen_at > longAgo).toBe(true);
    await runCron();
    expect((await getWorker(k, "curl-worker")).status).toBe("working");
    // Marked lost while its lease lives on (its heartbeats stopped for a while): the next lease heartbeat revives it.
    await rewrite("workers", "status", "lost", { id: "curl-worker" });
    const again = await leaseCall(k, task.id, "heartbeat", { lease_id: held?.lease.id });
    expect(again.status).toBe(200);
    await again.json();
    expect(await getWorker(k, "curl-worker")).toMatchObject({ status: "working", current_task: task.id });
  });
});

describe("workers: refused", () => {
  it("another team gets 404 for a worker and an empty list; a heartbeat there makes its own worker", async () => {
    const a = await createTeam("a");
    const b = await createTeam("b");
    await workerHeartbeat(a.api_key, "exec-1", { role: "executor", status: "working" });
    await expectProblem(await call("/v1/workers/exec-1", { key: b.api_key }), 404);
    expect(await json<WorkerList>(await call("/v1/workers", { key: b.api_key }))).toEqual({ items: [], next_cursor: null });
    await workerHeartbeat(b.api_key, "exec-1", { role: "planner", status: "idle" });
    expect(await getWorker(a.api_key, "exec-1")).toMatchObject({ role: "executor", status: "working" });
  });

  it("a heartbeat naming another team's task, or no task, as current_task is 404 and records nothing", async () => {
    const a = await createTeam("a");
    const b = await createTeam("b");
    const theirs = await createTask(a.api_key, {});
    for (const current_task of [theirs.id, "task_doesnotexist"]) {
      const res = await call("/v1/workers/wb/heartbeat", { method: "POST", key: b.api_key, json: { role: "executor", status: "working", current_task } });
      expect((await expectProblem(res, 404)).detail).toContain(current_task);
    }
    await expectProblem(await call("/v1/workers/wb", { key: b.api_key }), 404);
    const own = await createTask(b.api_key, {});
    expect(await workerHeartbeat(b.api_key, "wb", { role: "executor", status: "working", current_task: own.id })).toMatchObject({ current_task: own.id });
  });

  it("a read key cannot heartbeat (403); no key cannot list (401)", async () => {
    const team = await createTeam();
    const reader = await createKey(team.api_key, ["read"]);
    await expectProblem(await call("/v1/workers/w1/heartbeat", { method: "POST", key: reader, json: { role: "executor", status: "idle" } }), 403);
    await expectProblem(await call("/v1/workers"), 401);
    await expectProblem(await call("/v1/workers/w1"), 401);
    expect(await json<WorkerList>(await call("/v1/workers", { key: reader }))).toEqual({ items: [], next_cursor: null });
  });

  it("bad input is 400 naming the field, and records nothing", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const cases: [string, unknown, string[]][] = [
      ["w1", {}, ["role", "status"]],
      ["w1", { role: "Executor", status: "idle" }, ["role"]],
      ["w1", { role: "executor", status: "lost" }, ["status"]],
      ["w1", { role: "executor", status: "idle", current_task: "a:b" }, ["current_task"]],
      ["w%20x", { role: "executor", status: "idle" }, ["wid"]],
    ];
    for (const [wid, body, paths] of cases) {
      const problem = await expectProblem(await call(`/v1/workers/${wid}/heartbeat`, { method: "POST", key: k, json: body }), 400);
      expect(errorPaths(problem).sort(), JSON.stringify(body)).toEqual(paths.sort());
    }
    expect(errorPaths(await expectProblem(await call("/v1/workers?limit=0", { key: k }), 400))).toEqual(["limit"]);
    expect(errorPaths(await expectProblem(await call("/v1/workers?cursor=nope", { key: k }), 400))).toEqual(["cursor"]);
    expect(await json<WorkerList>(await call("/v1/workers", { key: k }))).toEqual({ items: [], next_cursor: null });
  });
});
