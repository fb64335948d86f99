import { describe, expect, it } from "vitest";
import type { CostGroupResponse } from "../src/routes/costs";
import { call, createKey, createTeam, errorPaths, expectProblem, json } from "./helpers";
import { claim, createTask } from "./task-helpers";
import { finish, redateCosts, rewrite } from "./worker-helpers";

type CostList = { items: CostGroupResponse[]; next_cursor: string | null };
const costs = async (key: string, query: string) => {
  const res = await call(`/v1/costs?${query}`, { key });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as CostList;
};

/** Creates a task of `role`, has `worker` claim and end it with `usage`, and dates what it reported on `day`. */
async function spend(key: string, role: string, worker: string, usage: { cost_usd: number; tokens: number; duration_ms: number }, day: string, end: "complete" | "fail" = "complete") {
  const task = await createTask(key, { role, max_attempts: 1 });
  const held = await claim(key, role, worker);
  expect(held?.id).toBe(task.id);
  await finish(key, task.id, held?.lease.id ?? "", end, usage);
  await redateCosts(task.id, day);
  return task.id;
}

describe("costs: sums by day, role, worker and task", () => {
  it("sums cost, tokens and duration per group, in key order, within from..to", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const t1 = await spend(k, "executor", "w1", { cost_usd: 1.5, tokens: 1000, duration_ms: 60_000 }, "2026-01-01");
    const t2 = await spend(k, "executor", "w2", { cost_usd: 0.25, tokens: 200, duration_ms: 5_000 }, "2026-01-02", "fail");
    const t3 = await spend(k, "planner", "w1", { cost_usd: 2, tokens: 3000, duration_ms: 1_000 }, "2026-01-02");
    // A task nobody worked on costs nothing and shows nowhere.
    await createTask(k, { title: "untouched", role: "reviewer" });

    expect((await costs(k, "by=day")).items).toEqual([
      { key: "2026-01-01", cost_usd: 1.5, tokens: 1000, duration_ms: 60_000, tasks: 1 },
      { key: "2026-01-02", cost_usd: 2.25, tokens: 3200, duration_ms: 6_000, tasks: 2 },
    ]);
    expect((await costs(k, "by=role")).items).toEqual([
      { key: "executor", cost_usd: 1.75, tokens: 1200, duration_ms: 65_000, tasks: 2 },
      { key: "planner", cost_usd: 2, tokens: 3000, duration_ms: 1_000, tasks: 1 },
    ]);
    expect((await costs(k, "by=worker")).items).toEqual([
      { key: "w1", cost_usd: 3.5, tokens: 4000, duration_ms: 61_000, tasks: 2 },
      { key: "w2", cost_usd: 0.25, tokens: 200, duration_ms: 5_000, tasks: 1 },
    ]);
    expect((await costs(k, "by=task")).items).toEqual(
      [
        { key: t1, cost_usd: 1.5, tokens: 1000, duration_ms: 60_000, tasks: 1 },
        { key: t2, cost_usd: 0.25, tokens: 200, duration_ms: 5_000, tasks: 1 },
        { key: t3, cost_usd: 2, tokens: 3000, duration_ms: 1_000, tasks: 1 },
      ].sort((a, b) => (a.key < b.key ? -1 : 1)),
    );
    // from and to are inclusive UTC days.
    expect((await costs(k, "by=role&from=2026-01-02")).items).toEqual([
      { key: "executor", cost_usd: 0.25, tokens: 200, duration_ms: 5_000, tasks: 1 },
      { key: "planner", cost_usd: 2, tokens: 3000, duration_ms: 1_000, tasks: 1 },
    ]);
    expect((await costs(k, "by=worker&to=2026-01-01")).items).toEqual([{ key: "w1", cost_usd: 1.5, tokens: 1000, duration_ms: 60_000, tasks: 1 }]);
    expect((await costs(k, "by=day&from=2026-01-01&to=2026-01-01")).items.map((g) => g.key)).toEqual(["2026-01-01"]);
    expect((await costs(k, "by=day&from=2026-02-01")).items).toEqual([]);
  });

  it("counts each attempt to the worker that ran it and the day it reported: a retried task keeps its earlier spend where it was", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k, { max_attempts: 3 });
    const a = await claim(k, "executor", "w1");
    expect((await finish(k, task.id, a?.lease.id ?? "", "fail", { cost_usd: 1, tokens: 10, duration_ms: 100 })).status).toBe("pending");
    await redateCosts(task.id, "2026-01-01");
    await rewrite("tasks", "available_at", new Date(Date.now() - 1000).toISOString(), { id: task.id });
    const b = await claim(k, "executor", "w2");
    expect(b?.id).toBe(task.id);
    expect((await finish(k, task.id, b?.lease.id ?? "", "complete", { cost_usd: 2, tokens: 20, duration_ms: 200 })).cost_usd).toBe(3);
    const today = new Date().toISOString().slice(0, 10);
    expect((await costs(k, "by=worker")).items).toEqual([
      { key: "w1", cost_usd: 1, tokens: 10, duration_ms: 100, tasks: 1 },
      { key: "w2", cost_usd: 2, tokens: 20, duration_ms: 200, tasks: 1 },
    ]);
    expect((await costs(k, "by=day")).items).toEqual([
      { key: "2026-01-01", cost_usd: 1, tokens: 10, duration_ms: 100, tasks: 1 },
      { key: today, cost_usd: 2, tokens: 20, duration_ms: 200, tasks: 1 },
    ]);
    expect((await costs(k, "by=task")).items).toEqual([{ key: task.id, cost_usd: 3, tokens: 30, duration_ms: 300, tasks: 1 }]);
    // The workers' own cost so far, the same way.
    const workers = await json<{ items: { id: string; cost_usd: number }[] }>(await call("/v1/workers", { key: k }));
    expect(workers.items.map((w) => [w.id, w.cost_usd])).toEqual([
      ["w1", 1],
      ["w2", 2],
    ]);
  });

  it("records an attempt once, whatever a client's retries: a repeated complete adds nothing", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k);
    const held = await claim(k);
    const body = { lease_id: held?.lease.id, cost_usd: 0.5 };
    const answers = await Promise.all([0, 1, 2].map(() => call(`/v1/tasks/${task.id}/complete`, { method: "POST", key: k, json: body })));
    expect(answers.map((r) => r.status).sort()).toEqual([200, 409, 409]);
    for (const r of answers) await r.text();
    expect((await costs(k, "by=task")).items).toEqual([{ key: task.id, cost_usd: 0.5, tokens: 0, duration_ms: 0, tasks: 1 }]);
  });

  it("records every attempt even when a client reuses its claim_id for a later claim of the same task", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const task = await createTask(k);
    const claimId = `reused-${crypto.randomUUID()}`;
    const claimWith = async () => json<{ id: string; lease: { id: string } }>(await call("/v1/tasks/claim", { method: "POST", key: k, json: { worker_id: "w1", role: "executor", claim_id: claimId } }));
    const first = await claimWith();
    expect((await json(await call(`/v1/tasks/${task.id}/release`, { method: "POST", key: k, json: { lease_id: first.lease.id, cost_usd: 1 } }))).status).toBe("pending");
    const second = await claimWith();
    expect(second.lease.id).toBe(first.lease.id);
    await finish(k, task.id, second.lease.id, "complete", { cost_usd: 2 });
    expect((await costs(k, "by=task")).items).toEqual([{ key: task.id, cost_usd: 3, tokens: 0, duration_ms: 0, tasks: 1 }]);
  });

  it("pages groups by key", async () => {
    const team = await createTeam();
    const k = team.api_key;
    for (const role of ["a", "b", "c"]) await spend(k, role, "w", { cost_usd: 1, tokens: 1, duration_ms: 1 }, "2026-03-01");
    const first = await costs(k, "by=role&limit=2");
    expect(first.items.map((g) => g.key)).toEqual(["a", "b"]);
    const second = await costs(k, `by=role&limit=2&cursor=${first.next_cursor}`);
    expect(second).toEqual({ items: [expect.objectContaining({ key: "c" })], next_cursor: null });
  });
});

describe("costs: refused", () => {
  it("another team sees none of a team's costs; no key is 401", async () => {
    const a = await createTeam("a");
    const b = await createTeam("b");
    await spend(a.api_key, "executor", "w1", { cost_usd: 1, tokens: 10, duration_ms: 10 }, "2026-01-01");
    const bReader = await createKey(b.api_key, ["read"]);
    for (const by of ["day", "role", "worker", "task"]) expect(await costs(bReader, `by=${by}`)).toEqual({ items: [], next_cursor: null });
    expect((await costs(a.api_key, "by=day")).items).toHaveLength(1);
    await expectProblem(await call("/v1/costs?by=day"), 401);
  });

  it("bad input is 400 naming the field", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const cases: [string, string[]][] = [
      ["", ["by"]],
      ["by=month", ["by"]],
      ["by=day&from=2026-1-1", ["from"]],
      ["by=day&to=2026-02-30", ["to"]],
      ["by=day&from=2026-03-02&to=2026-03-01", ["from"]],
      ["by=day&limit=500", ["limit"]],
      ["by=day&cursor=nope", ["cursor"]],
    ];
    for (const [query, paths] of cases) {
      const problem = await expectProblem(await call(`/v1/costs?${query}`, { key: k }), 400);
      expect(errorPaths(problem), query).toEqual(paths);
    }
    expect(await json<CostList>(await call("/v1/costs?by=task", { key: k }))).toEqual({ items: [], next_cursor: null });
  });
});
