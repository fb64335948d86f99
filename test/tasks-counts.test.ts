import { describe, expect, it } from "vitest";
import type { TaskCountsResponse } from "../src/routes/tasks";
import { call, createKey, createTeam, json } from "./helpers";
import { claim, createTask } from "./task-helpers";

const counts = async (key: string, query = "") => {
  const res = await call(`/v1/tasks/counts${query}`, { key });
  const body = await json<TaskCountsResponse>(res);
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
};

describe("GET /v1/tasks/counts", () => {
  it("counts the team's tasks in every status, zeros included, optionally of one role", async () => {
    const team = await createTeam();
    const empty = await counts(team.api_key);
    expect(empty).toEqual({ counts: { pending: 0, claimed: 0, running: 0, completed: 0, failed: 0, cancelled: 0, blocked: 0, waiting_input: 0 }, total: 0 });

    const first = await createTask(team.api_key, { title: "one" });
    await createTask(team.api_key, { title: "two" });
    await createTask(team.api_key, { title: "docs", role: "documentation" });
    await createTask(team.api_key, { title: "after one", depends_on: [first.id] });
    await claim(team.api_key, "executor", "w1");
    const cancel = await call(`/v1/tasks/${first.id}/cancel`, { method: "POST", key: team.api_key });
    await cancel.body?.cancel();

    const all = await counts(team.api_key);
    expect(all.total).toBe(4);
    expect(all.counts).toMatchObject({ pending: 2, cancelled: 1, blocked: 1, claimed: 0 });
    expect((await counts(team.api_key, "?role=documentation")).counts).toMatchObject({ pending: 1, blocked: 0, cancelled: 0 });

    // A read key may count; another team sees none of these.
    expect((await counts(await createKey(team.api_key, ["read"]))).total).toBe(4);
    expect((await counts((await createTeam("other")).api_key)).total).toBe(0);
  });

  it("is not taken for a task id, and refuses a bad role or no key", async () => {
    const team = await createTeam();
    const bad = await call("/v1/tasks/counts?role=Not%20A%20Role", { key: team.api_key });
    expect(bad.status).toBe(400);
    await bad.body?.cancel();
    const anonymous = await call("/v1/tasks/counts");
    expect(anonymous.status).toBe(401);
    await anonymous.body?.cancel();
  });
});
