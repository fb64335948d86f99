import { describe, expect, it } from "vitest";
import type { QuestionResponse, TaskResponse } from "../src/lib/task-schemas";
import { SseReader, call, createKey, createTeam, expectProblem, json } from "./helpers";
import { claim, createTask, getTask, leaseCall, past, setTimes } from "./task-helpers";
import { getWorker } from "./worker-helpers";

/** A worker stopping gives its task back: `POST /v1/tasks/:id/release` under the lease. */

async function release(key: string, id: string, body: Record<string, unknown>): Promise<TaskResponse> {
  const res = await leaseCall(key, id, "release", body);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as TaskResponse;
}

describe("release: a stopping worker gives its task back without using up an attempt", () => {
  it("the task is pending and claimable at once, its attempt not counted, its worker idle, its open question withdrawn", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const task = await createTask(agent, { max_attempts: 1 });
    const held = await claim(agent, "executor", "w1");
    expect(held).toMatchObject({ id: task.id, attempts: 1 });
    const lease = held?.lease.id ?? "";
    expect((await json(await leaseCall(agent, task.id, "heartbeat", { lease_id: lease }))).status).toBe("running");
    const asked = await call("/v1/questions", { method: "POST", key: agent, json: { worker_id: "w1", task_id: task.id, text: "?" } });
    const q = await json<QuestionResponse>(asked);

    const released = await release(agent, task.id, { lease_id: lease, reason: "worker stopped (SIGTERM)" });
    // Its only attempt given back: with max_attempts 1, a `fail` would have failed it for good.
    expect(released).toMatchObject({ status: "pending", attempts: 0, lease_expires_at: null });
    expect(Date.parse(released.available_at)).toBeLessThanOrEqual(Date.now());
    expect(await getWorker(agent, "w1")).toMatchObject({ status: "idle", current_task: null });
    expect(await json<QuestionResponse>(await call(`/v1/questions/${q.id}`, { key: agent }))).toMatchObject({ status: "withdrawn" });

    // The lease is over: a second release, a complete or a heartbeat with it is 409.
    await expectProblem(await leaseCall(agent, task.id, "release", { lease_id: lease }), 409);
    await expectProblem(await leaseCall(agent, task.id, "complete", { lease_id: lease }), 409);

    // Claimable at once (no backoff), by another worker, and still with its one attempt.
    const again = await claim(agent, "executor", "w2");
    expect(again).toMatchObject({ id: task.id, attempts: 1 });
    expect(await getTask(agent, task.id)).toMatchObject({ status: "claimed", worker_id: "w2" });
  });

  it("the team stream announces the release with its reason, the withdrawn question and the worker", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const task = await createTask(agent);
    const held = await claim(agent, "executor", "w1");
    const lease = held?.lease.id ?? "";
    await json(await call("/v1/questions", { method: "POST", key: agent, json: { worker_id: "w1", task_id: task.id, text: "which?" } }));
    const res = await call("/v1/stream", { key: agent });
    expect(res.status).toBe(200);
    const sse = new SseReader(res);
    await sse.next(); // retry
    expect((await sse.nextEvent()).event).toBe("snapshot");
    await release(agent, task.id, { lease_id: lease, reason: "stopping" });
    const seen: { event: string; data: Record<string, any> }[] = [];
    while (seen.length < 3) {
      const m = await sse.nextEvent();
      seen.push({ event: m.event ?? "", data: JSON.parse(m.data) });
    }
    await sse.close();
    expect(seen.map((e) => e.event)).toEqual(["task.released", "question.withdrawn", "worker.updated"]);
    expect(seen[0]?.data).toMatchObject({ data: { task: { id: task.id, status: "pending" }, reason: "stopping" } });
    expect(seen[1]?.data).toMatchObject({ data: { question: { task_id: task.id, status: "withdrawn" } } });
    expect(seen[2]?.data).toMatchObject({ data: { worker: { id: "w1", status: "idle", current_task: null } } });
  });

  it("refused: a stale or foreign lease is 409, an expired one too; no lease_id is 400; a read key 403; another team's task 404", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const reader = await createKey(team.api_key, ["read"]);
    const task = await createTask(agent);
    const held = await claim(agent, "executor", "w1");
    const lease = held?.lease.id ?? "";
    await expectProblem(await leaseCall(agent, task.id, "release", { lease_id: "lease_not_this_one" }), 409);
    await expectProblem(await leaseCall(agent, task.id, "release", {}), 400);
    await expectProblem(await leaseCall(reader, task.id, "release", { lease_id: lease }), 403);
    const other = await createTeam();
    await expectProblem(await leaseCall(other.api_key, task.id, "release", { lease_id: lease }), 404);
    await setTimes(task.id, { lease_expires_at: past() });
    await expectProblem(await leaseCall(agent, task.id, "release", { lease_id: lease }), 409);
    // Nothing changed by any of them: still claimed under the (now expired) lease, one attempt.
    expect(await getTask(agent, task.id)).toMatchObject({ status: "claimed", attempts: 1, worker_id: "w1" });
  });
});
