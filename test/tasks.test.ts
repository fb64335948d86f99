import { describe, expect, it } from "vitest";
import type { TaskResponse } from "../src/lib/task-schemas";
import { call, createKey, createTeam, json } from "./helpers";
import { claim, createTask, getTask, leaseCall } from "./task-helpers";

describe("tasks: create, read, list", () => {
  it("creates a task with defaults and reads it back", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const task = await createTask(agent, { title: "Write the README", description: "## Goal\nDocument `claim`.", role: "documentation" });
    expect(task).toEqual({
      id: expect.stringMatching(/^task_/),
      title: "Write the README",
      description: "## Goal\nDocument `claim`.",
      role: "documentation",
      priority: "normal",
      depends_on: [],
      status: "pending",
      blocked_by: null,
      attempts: 0,
      max_attempts: 3,
      available_at: task.created_at,
      idempotency_key: null,
      source: "manual",
      worker_id: null,
      lease_expires_at: null,
      result: null,
      cost_usd: 0,
      tokens: 0,
      duration_ms: 0,
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      updated_at: task.created_at,
      claimed_at: null,
      completed_at: null,
      version: 0,
    });
    expect(await getTask(team.api_key, task.id)).toEqual(task);
    const reader = await createKey(team.api_key, ["read"]);
    expect(await getTask(reader, task.id)).toEqual(task);
  });

  it("returns the first task with 200 for an idempotency key seen before, and creates nothing", async () => {
    const team = await createTeam();
    const first = await createTask(team.api_key, { title: "from issue #7", idempotency_key: "gh-7", priority: "high", source: "planner", max_attempts: 5 });
    expect(first).toMatchObject({ idempotency_key: "gh-7", priority: "high", source: "planner", max_attempts: 5 });
    const again = await call("/v1/tasks", { method: "POST", key: team.api_key, json: { title: "a different title", role: "executor", idempotency_key: "gh-7" } });
    expect(again.status).toBe(200);
    expect(await json(again)).toEqual(first);
    // Concurrent creates with one key: one task.
    const racing = await Promise.all(Array.from({ length: 8 }, () => call("/v1/tasks", { method: "POST", key: team.api_key, json: { title: "race", role: "executor", idempotency_key: "race-1" } })));
    const bodies = await Promise.all(racing.map((r) => json<TaskResponse>(r)));
    expect(racing.map((r) => r.status).filter((s) => s === 201)).toHaveLength(1);
    expect(racing.every((r) => r.status === 200 || r.status === 201)).toBe(true);
    expect(new Set(bodies.map((b) => b.id)).size).toBe(1);
    const list = await json(await call("/v1/tasks?limit=200", { key: team.api_key }));
    expect(list.items.map((t: TaskResponse) => t.title).sort()).toEqual(["from issue #7", "race"]);
    // Keys are per team: another team may use the same one.
    const other = await createTeam();
    expect((await createTask(other.api_key, { idempotency_key: "gh-7" })).id).not.toBe(first.id);
  });

  it("lists newest first, filtered by status and role, page by page", async () => {
    const team = await createTeam();
    const made: TaskResponse[] = [];
    for (let i = 0; i < 5; i++) made.push(await createTask(team.api_key, { title: `exec ${i}`, role: "executor" }));
    const doc = await createTask(team.api_key, { title: "docs", role: "documentation" });
    const claimed = await claim(team.api_key, "executor");
    expect(claimed?.id).toBe(made[0]?.id);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: TaskResponse[]; next_cursor: string | null } = await json(await call(`/v1/tasks?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { key: team.api_key }));
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((t) => t.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual([doc.id, ...made.map((t) => t.id).reverse()]);

    const ids = async (query: string) => (await json(await call(`/v1/tasks?${query}`, { key: team.api_key }))).items.map((t: TaskResponse) => t.id);
    expect(await ids("role=documentation")).toEqual([doc.id]);
    expect(await ids("status=claimed")).toEqual([made[0]?.id]);
    expect(await ids("status=pending&role=executor")).toEqual(made.slice(1).map((t) => t.id).reverse());
    expect(await ids("status=completed")).toEqual([]);
  });
});

describe("tasks: dependencies", () => {
  it("a task is not claimable until every dependency completed", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const plan = await createTask(k, { title: "plan", role: "planner" });
    const build = await createTask(k, { title: "build", role: "planner" });
    const ship = await createTask(k, { title: "ship", role: "executor", priority: "critical", depends_on: [plan.id, build.id] });
    expect(ship).toMatchObject({ status: "pending", depends_on: [plan.id, build.id] });
    expect(await claim(k, "executor")).toBeNull();

    const p = await claim(k, "planner");
    expect(p?.id).toBe(plan.id);
    await (await leaseCall(k, plan.id, "complete", { lease_id: p?.lease.id })).json();
    expect(await claim(k, "executor")).toBeNull(); // build is still pending

    const b = await claim(k, "planner");
    expect(b?.id).toBe(build.id);
    await (await leaseCall(k, build.id, "complete", { lease_id: b?.lease.id })).json();
    expect((await claim(k, "executor"))?.id).toBe(ship.id);
  });

  it("a failed or cancelled dependency blocks its dependents, transitively, naming it; a retry unblocks them", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const root = await createTask(k, { title: "root", role: "planner", max_attempts: 1 });
    const mid = await createTask(k, { title: "mid", depends_on: [root.id] });
    const leaf = await createTask(k, { title: "leaf", depends_on: [mid.id] });
    const other = await createTask(k, { title: "independent" });

    const c = await claim(k, "planner");
    const failed = await leaseCall(k, root.id, "fail", { lease_id: c?.lease.id, result: "the repo does not build" });
    expect(await json(failed)).toMatchObject({ status: "failed", result: "the repo does not build", completed_at: expect.any(String) });
    expect(await getTask(k, mid.id)).toMatchObject({ status: "blocked", blocked_by: root.id });
    expect(await getTask(k, leaf.id)).toMatchObject({ status: "blocked", blocked_by: root.id });
    expect(await getTask(k, other.id)).toMatchObject({ status: "pending", blocked_by: null });
    // A task created on a blocked task is blocked from the start, by the same root.
    expect(await createTask(k, { title: "late", depends_on: [leaf.id] })).toMatchObject({ status: "blocked", blocked_by: root.id });
    expect((await claim(k, "executor"))?.id).toBe(other.id);

    const retried = await call(`/v1/tasks/${root.id}/retry`, { method: "POST", key: k });
    expect(retried.status).toBe(200);
    expect(await json(retried)).toMatchObject({ status: "pending", attempts: 0, blocked_by: null, completed_at: null });
    expect(await getTask(k, mid.id)).toMatchObject({ status: "pending", blocked_by: null });
    expect(await getTask(k, leaf.id)).toMatchObject({ status: "pending", blocked_by: null });
  });

  it("cancelling a task blocks its dependents; a retry keeps blocked those another dependency still blocks", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const a = await createTask(k, { title: "a" });
    const b = await createTask(k, { title: "b" });
    const both = await createTask(k, { title: "needs a and b", depends_on: [a.id, b.id] });

    const cancelled = await call(`/v1/tasks/${a.id}/cancel`, { method: "POST", key: k });
    expect(await json(cancelled)).toMatchObject({ status: "cancelled", completed_at: expect.any(String) });
    expect(await getTask(k, both.id)).toMatchObject({ status: "blocked", blocked_by: a.id });
    await (await call(`/v1/tasks/${b.id}/cancel`, { method: "POST", key: k })).json();

    await (await call(`/v1/tasks/${a.id}/retry`, { method: "POST", key: k })).json();
    expect(await getTask(k, both.id)).toMatchObject({ status: "blocked", blocked_by: b.id });
    await (await call(`/v1/tasks/${b.id}/retry`, { method: "POST", key: k })).json();
    expect(await getTask(k, both.id)).toMatchObject({ status: "pending", blocked_by: null });
  });
});

describe("tasks: cancel and retry", () => {
  it("cancels a claimed task, voiding its lease; an ended task is 409 to cancel, a live one 409 to retry", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k);
    const held = await claim(k);
    expect(held?.id).toBe(task.id);
    const cancelled = await call(`/v1/tasks/${task.id}/cancel`, { method: "POST", key: k });
    expect(cancelled.status).toBe(200);
    expect(await json(cancelled)).toMatchObject({ status: "cancelled", lease_expires_at: null });
    const beat = await leaseCall(k, task.id, "heartbeat", { lease_id: held?.lease.id });
    expect(beat.status).toBe(409);
    expect((await json(beat)).detail).toContain("cancelled");

    const again = await call(`/v1/tasks/${task.id}/cancel`, { method: "POST", key: k });
    expect(again.status).toBe(409);
    expect((await json(again)).detail).toContain("cancelled");
    const live = await createTask(k);
    const retryLive = await call(`/v1/tasks/${live.id}/retry`, { method: "POST", key: k });
    expect(retryLive.status).toBe(409);
    expect((await json(retryLive)).detail).toContain("pending");

    // Retried, it is claimable again, with fresh attempts.
    await (await call(`/v1/tasks/${task.id}/retry`, { method: "POST", key: k })).json();
    const first = await claim(k);
    const second = await claim(k);
    expect([first?.id, second?.id].sort()).toEqual([task.id, live.id].sort());
    expect([first, second].find((t) => t?.id === task.id)?.attempts).toBe(1);
  });

  it("a retried task holds nothing of the last claim (worker, claim time, lease) but keeps the last attempt's result and the totals", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k, { title: "fails once", max_attempts: 1 });
    const held = await claim(k, "executor", "exec-old");
    const failed = await json(await leaseCall(k, task.id, "fail", { lease_id: held?.lease.id, result: "tests failed", cost_usd: 0.5 }));
    expect(failed).toMatchObject({ status: "failed", worker_id: "exec-old", result: "tests failed" });

    const retried = await call(`/v1/tasks/${task.id}/retry`, { method: "POST", key: k });
    const expected = { status: "pending", attempts: 0, worker_id: null, claimed_at: null, lease_expires_at: null, completed_at: null, result: "tests failed", cost_usd: 0.5 };
    expect(await json(retried)).toMatchObject(expected);
    expect(await getTask(k, task.id)).toMatchObject(expected);
    // The next claim is the new holder's.
    expect(await claim(k, "executor", "exec-new")).toMatchObject({ id: task.id, worker_id: "exec-new", attempts: 1 });
  });
});
