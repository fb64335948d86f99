import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { dbOf } from "../src/db/client";
import { expireLeases } from "../src/db/tasks";
import type { QuestionResponse } from "../src/lib/task-schemas";
import { call, createKey, createTeam, json } from "./helpers";
import { claim, createTask, getTask, past, setTimes } from "./task-helpers";

// The cron expires leases in one statement and withdraws questions in a later one; should the
// later one fail, the next run still withdraws every open question no attempt waits on.

const runCron = () => worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, createExecutionContext());

async function ask(key: string, body: { worker_id: string; task_id: string; text: string }): Promise<QuestionResponse> {
  const res = await call("/v1/questions", { method: "POST", key, json: body });
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return JSON.parse(text) as QuestionResponse;
}

const question = async (key: string, id: string) => json<QuestionResponse>(await call(`/v1/questions/${id}`, { key }));

/** A task claimed by w1, waiting on its question, whose lease has expired and was taken back without the withdrawal. */
async function expiredWithoutWithdrawal() {
  const team = await createTeam();
  const agent = await createKey(team.api_key, ["agent"]);
  const task = await createTask(agent);
  expect((await claim(agent, "executor", "w1"))?.id).toBe(task.id);
  const q1 = await ask(agent, { worker_id: "w1", task_id: task.id, text: "first" });
  await setTimes(task.id, { lease_expires_at: past() });
  // The cron's expiry alone, as when its withdrawal then failed.
  expect((await expireLeases(dbOf(env), new Date().toISOString())).map((t) => t.id)).toContain(task.id);
  expect(await question(agent, q1.id)).toMatchObject({ status: "open" });
  return { team, agent, task, q1 };
}

describe("the cron withdraws questions no attempt waits on", () => {
  it("an open question left on a pending task by an earlier run is withdrawn by the next", async () => {
    const c = await expiredWithoutWithdrawal();
    await runCron();
    expect(await question(c.agent, c.q1.id)).toMatchObject({ status: "withdrawn" });
    expect(await getTask(c.agent, c.task.id)).toMatchObject({ status: "pending" });
  });

  it("when a new attempt already waits on a question of its own, only the old one goes", async () => {
    const c = await expiredWithoutWithdrawal();
    expect((await claim(c.agent, "executor", "w2"))?.id).toBe(c.task.id);
    const q2 = await ask(c.agent, { worker_id: "w2", task_id: c.task.id, text: "second" });
    await runCron();
    expect(await question(c.agent, c.q1.id)).toMatchObject({ status: "withdrawn" });
    expect(await question(c.agent, q2.id)).toMatchObject({ status: "open" });
    expect(await getTask(c.agent, c.task.id)).toMatchObject({ status: "waiting_input" });
  });
});
