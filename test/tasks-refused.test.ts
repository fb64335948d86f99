import { describe, expect, it } from "vitest";
import type { TaskResponse } from "../src/lib/task-schemas";
import { call, createKey, createTeam, errorPaths, expectProblem, json } from "./helpers";
import { claim, createTask, getTask, leaseCall } from "./task-helpers";

const post = (path: string, key: string, body: unknown) => call(path, { method: "POST", key, json: body });

async function taskCount(key: string): Promise<number> {
  return (await json(await call("/v1/tasks?limit=200", { key }))).items.length;
}

describe("tasks: bad input is 400 naming the fields, and changes nothing", () => {
  it("refuses a malformed task", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const cases: [unknown, string[]][] = [
      [{}, ["title", "role"]],
      [{ title: "", role: "executor" }, ["title"]],
      [{ title: "x", role: "Executor" }, ["role"]],
      [{ title: "x", role: "has space" }, ["role"]],
      [{ title: "x", role: "executor", priority: "urgent" }, ["priority"]],
      [{ title: "x", role: "executor", depends_on: "task_1" }, ["depends_on"]],
      [{ title: "x", role: "executor", depends_on: ["ok", 42, "a:b"] }, ["depends_on.1", "depends_on.2"]],
      [{ title: "x", role: "executor", depends_on: Array.from({ length: 51 }, (_, i) => `t${i}`) }, ["depends_on"]],
      [{ title: "x", role: "executor", max_attempts: 0 }, ["max_attempts"]],
      [{ title: "x", role: "executor", max_attempts: 1.5 }, ["max_attempts"]],
      [{ title: "x", role: "executor", idempotency_key: "" }, ["idempotency_key"]],
      [{ title: "x", role: "executor", source: "github" }, ["source"]],
      [{ title: "x", role: "executor", description: 7 }, ["description"]],
    ];
    for (const [body, paths] of cases) {
      const problem = await expectProblem(await post("/v1/tasks", k, body), 400);
      expect(errorPaths(problem).sort(), JSON.stringify(body)).toEqual(paths.sort());
    }
    await expectProblem(await call("/v1/tasks", { method: "POST", key: k, headers: { "Content-Type": "application/json" }, body: "{not json" }), 400);
    await expectProblem(await call("/v1/tasks", { method: "POST", key: k, headers: { "Content-Type": "text/plain" }, body: "title=x" }), 415);
    expect(await taskCount(k)).toBe(0);
  });

  it("answers 404 naming each dependency the team does not have", async () => {
    const team = await createTeam();
    const real = await createTask(team.api_key);
    const problem = await expectProblem(await post("/v1/tasks", team.api_key, { title: "x", role: "executor", depends_on: [real.id, "task_nope", "task_gone"] }), 404);
    expect(problem.errors).toEqual([
      { path: "depends_on.1", message: expect.stringContaining("task_nope") },
      { path: "depends_on.2", message: expect.stringContaining("task_gone") },
    ]);
    expect(problem.detail).toContain("task_nope");
    expect(await taskCount(team.api_key)).toBe(1);
  });

  it("refuses malformed claims, lease calls, queries and ids", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k);
    const cases: [string, unknown, string[]][] = [
      ["/v1/tasks/claim", {}, ["worker_id", "role"]],
      ["/v1/tasks/claim", { worker_id: "w 1", role: "executor" }, ["worker_id"]],
      [`/v1/tasks/${task.id}/heartbeat`, {}, ["lease_id"]],
      [`/v1/tasks/${task.id}/complete`, { lease_id: "l", cost_usd: -1, tokens: 1.5 }, ["cost_usd", "tokens"]],
      [`/v1/tasks/${task.id}/fail`, { lease_id: "l", duration_ms: "long", result: 5 }, ["duration_ms", "result"]],
    ];
    for (const [path, body, paths] of cases) {
      const problem = await expectProblem(await post(path, k, body), 400);
      expect(errorPaths(problem).sort(), path).toEqual(paths.sort());
    }
    expect(errorPaths(await expectProblem(await call("/v1/tasks?status=done", { key: k }), 400))).toEqual(["status"]);
    expect(errorPaths(await expectProblem(await call("/v1/tasks?role=Exec&limit=0", { key: k }), 400)).sort()).toEqual(["limit", "role"]);
    expect(errorPaths(await expectProblem(await call("/v1/tasks?cursor=bogus", { key: k }), 400))).toEqual(["cursor"]);
    expect(errorPaths(await expectProblem(await call("/v1/tasks/a%3Ab", { key: k }), 400))).toEqual(["id"]);
    await expectProblem(await call("/v1/tasks/task_nope", { key: k }), 404);
    expect(await getTask(k, task.id)).toMatchObject({ status: "pending", attempts: 0 });
  });
});

describe("tasks: who may do what", () => {
  it("read keys cannot create, claim, or touch a lease; agents cannot cancel or retry; no key is 401", async () => {
    const team = await createTeam();
    const reader = await createKey(team.api_key, ["read"]);
    const agent = await createKey(team.api_key, ["agent"]);
    const task = await createTask(agent);
    const other = await createTask(agent, { title: "other" });
    const held = await claim(agent);
    expect(held?.id).toBe(task.id);

    await expectProblem(await post("/v1/tasks", reader, { title: "x", role: "executor" }), 403);
    await expectProblem(await post("/v1/tasks/claim", reader, { worker_id: "w", role: "executor" }), 403);
    for (const action of ["heartbeat", "complete", "fail"] as const) await expectProblem(await leaseCall(reader, task.id, action, { lease_id: held?.lease.id }), 403);
    for (const action of ["cancel", "retry"]) {
      await expectProblem(await post(`/v1/tasks/${other.id}/${action}`, reader, {}), 403);
      await expectProblem(await post(`/v1/tasks/${other.id}/${action}`, agent, {}), 403);
    }
    await expectProblem(await call("/v1/tasks"), 401);
    await expectProblem(await post("/v1/tasks/claim", "sb_not_a_key", { worker_id: "w", role: "executor" }), 401);

    // Reads are fine, and nothing changed.
    expect(await getTask(reader, task.id)).toMatchObject({ status: "claimed", worker_id: "w1" });
    expect(await getTask(reader, other.id)).toMatchObject({ status: "pending", attempts: 0 });
    expect(await taskCount(reader)).toBe(2);
  });
});

describe("tasks: cross-team", () => {
  it("team B gets 404 on every task route with team A's ids, sees none of A's tasks, and never claims them", async () => {
    const a = await createTeam("A");
    const b = await createTeam("B");
    const secret = "A-confidential-task-title";
    const held = await createTask(a.api_key, { title: secret, idempotency_key: "shared-key" });
    const pending = await createTask(a.api_key, { title: secret, priority: "critical" });
    const lease = await claim(a.api_key);
    expect(lease?.id).toBe(pending.id);
    const before: TaskResponse[] = (await json(await call("/v1/tasks", { key: a.api_key }))).items;

    const hidden = async (res: Response, what: string) => {
      const text = await res.clone().text();
      await expectProblem(res, 404);
      expect(text, what).not.toContain(secret);
    };
    for (const id of [held.id, pending.id]) {
      await hidden(await call(`/v1/tasks/${id}`, { key: b.api_key }), `GET ${id}`);
      for (const action of ["cancel", "retry"]) await hidden(await post(`/v1/tasks/${id}/${action}`, b.api_key, {}), action);
      for (const action of ["heartbeat", "complete", "fail"] as const) await hidden(await leaseCall(b.api_key, id, action, { lease_id: lease?.lease.id }), action);
    }
    await hidden(await post("/v1/tasks", b.api_key, { title: "x", role: "executor", depends_on: [held.id] }), "depends_on");
    const list = await call("/v1/tasks?limit=200", { key: b.api_key });
    expect(await json(list)).toEqual({ items: [], next_cursor: null });
    for (let i = 0; i < 3; i++) expect(await claim(b.api_key)).toBeNull();
    // B's own task with A's idempotency key is B's.
    const mine = await createTask(b.api_key, { title: "B's", idempotency_key: "shared-key" });
    expect(mine.id).not.toBe(held.id);
    expect((await claim(b.api_key))?.id).toBe(mine.id);

    expect((await json(await call("/v1/tasks", { key: a.api_key }))).items).toEqual(before);
  });
});
