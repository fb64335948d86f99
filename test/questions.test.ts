import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { dbOf } from "../src/db/client";
import { expireLeases } from "../src/db/tasks";
import type { CreatedKey } from "../src/routes/keys";
import type { QuestionResponse } from "../src/lib/task-schemas";
import { call, createKey, createTeam, errorPaths, expectProblem, json } from "./helpers";
import { claim, createTask, getTask, leaseCall, past, setTimes } from "./task-helpers";
import { finish, getWorker, workerHeartbeat } from "./worker-helpers";

type QuestionList = { items: QuestionResponse[]; next_cursor: string | null };
const post = (path: string, key: string, body: unknown) => call(path, { method: "POST", key, json: body });
const runCron = () => worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, createExecutionContext());

async function ask(key: string, body: { worker_id: string; task_id: string; text: string }): Promise<QuestionResponse> {
  const res = await post("/v1/questions", key, body);
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return JSON.parse(text) as QuestionResponse;
}

async function answer(key: string, qid: string, text: string): Promise<QuestionResponse> {
  const res = await post(`/v1/questions/${qid}/answer`, key, { text });
  const body = await res.text();
  expect(res.status, body).toBe(200);
  return JSON.parse(body) as QuestionResponse;
}

async function list(key: string, query = ""): Promise<QuestionList> {
  const res = await call(`/v1/questions${query}`, { key });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as QuestionList;
}

async function getQuestion(key: string, qid: string): Promise<QuestionResponse> {
  const res = await call(`/v1/questions/${qid}`, { key });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as QuestionResponse;
}

/** A team with an operator key whose id is known, an agent key, a read key, and a task claimed by `w1`. */
async function heldTask() {
  const team = await createTeam();
  const created = await call("/v1/keys", { method: "POST", key: team.api_key, json: { name: "person", scopes: ["operator"] } });
  expect(created.status).toBe(201);
  const operator = await json<CreatedKey>(created);
  const agent = await createKey(team.api_key, ["agent"]);
  const reader = await createKey(team.api_key, ["read"]);
  const task = await createTask(agent);
  const held = await claim(agent, "executor", "w1");
  expect(held?.id).toBe(task.id);
  return { team, operator, agent, reader, task, lease: held?.lease.id ?? "" };
}

describe("questions: ask, wait, answer", () => {
  it("asking makes the task waiting_input and the worker waiting; the answer sends them back to running and working, once", async () => {
    const { operator, agent, reader, task, lease } = await heldTask();
    // The first heartbeat marks the task running.
    expect((await json(await leaseCall(agent, task.id, "heartbeat", { lease_id: lease }))).status).toBe("running");

    const before = new Date().toISOString();
    const q = await ask(agent, { worker_id: "w1", task_id: task.id, text: "## Which database?\nPostgres or **SQLite**?" });
    expect(q).toEqual({
      id: expect.stringMatching(/^q_/),
      task_id: task.id,
      worker_id: "w1",
      text: "## Which database?\nPostgres or **SQLite**?",
      status: "open",
      answer: null,
      answered_by: null,
      created_at: expect.any(String),
      answered_at: null,
      version: 0,
    });
    expect(q.created_at >= before).toBe(true);
    expect(await getTask(reader, task.id)).toMatchObject({ status: "waiting_input", worker_id: "w1" });
    expect(await getWorker(reader, "w1")).toMatchObject({ status: "waiting", current_task: task.id });

    // The lease keeps counting while the task waits: heartbeats extend it and keep it waiting.
    await setTimes(task.id, { lease_expires_at: new Date(Date.now() + 60_000).toISOString() });
    const beat = await leaseCall(agent, task.id, "heartbeat", { lease_id: lease });
    const beaten = await json(beat);
    expect(beat.status).toBe(200);
    expect(beaten.status).toBe("waiting_input");
    expect(beaten.lease_expires_at > new Date(Date.now() + 10 * 60_000).toISOString()).toBe(true);

    expect((await list(reader, "?status=open")).items).toEqual([q]);
    expect((await list(reader, "?status=answered")).items).toEqual([]);
    expect(await getQuestion(agent, q.id)).toEqual(q);

    const answered = await answer(operator.key, q.id, "SQLite, on D1.");
    expect(answered).toEqual({ ...q, status: "answered", answer: "SQLite, on D1.", answered_by: operator.id, answered_at: expect.any(String), version: 1 });
    expect(answered.answered_at && answered.answered_at >= q.created_at).toBe(true);
    expect(await getTask(reader, task.id)).toMatchObject({ status: "running" });
    expect(await getWorker(reader, "w1")).toMatchObject({ status: "working", current_task: task.id });
    // The worker polls for the answer.
    expect(await getQuestion(agent, q.id)).toEqual(answered);

    const again = await expectProblem(await post(`/v1/questions/${q.id}/answer`, operator.key, { text: "Postgres after all" }), 409);
    expect(again.detail).toContain("already answered");
    expect(await getQuestion(reader, q.id)).toEqual(answered);
    expect((await list(reader, "?status=open")).items).toEqual([]);
    expect((await list(reader, "?status=answered")).items).toEqual([answered]);
    expect((await list(reader)).items).toEqual([answered]);

    // The task can ask again once running, and still be completed.
    const q2 = await ask(agent, { worker_id: "w1", task_id: task.id, text: "And the schema?" });
    await answer(operator.key, q2.id, "Yours to choose.");
    expect(await finish(agent, task.id, lease, "complete")).toMatchObject({ status: "completed" });
  });

  it("a claimed task (no heartbeat yet) may ask; the answer makes it running", async () => {
    const { team, agent, reader, task } = await heldTask();
    const q = await ask(agent, { worker_id: "w1", task_id: task.id, text: "Ready?" });
    expect(await getTask(reader, task.id)).toMatchObject({ status: "waiting_input" });
    await answer(team.api_key, q.id, "Go.");
    expect(await getTask(reader, task.id)).toMatchObject({ status: "running" });
  });

  it("asking changes a worker only if the team has its row: it never creates one", async () => {
    const { agent, reader, task } = await heldTask();
    await env.DB.prepare("DELETE FROM workers WHERE id = 'w1'").run();
    await ask(agent, { worker_id: "w1", task_id: task.id, text: "?" });
    expect(await getTask(reader, task.id)).toMatchObject({ status: "waiting_input" });
    await expectProblem(await call("/v1/workers/w1", { key: reader }), 404);
  });

  it("lists page newest first", async () => {
    const team = await createTeam();
    const k = team.api_key;
    const asked: QuestionResponse[] = [];
    for (let i = 0; i < 3; i++) {
      const t = await createTask(k, { title: `t${i}` });
      const held = await claim(k, "executor", `w${i}`);
      expect(held?.id).toBe(t.id);
      asked.push(await ask(k, { worker_id: `w${i}`, task_id: t.id, text: `q${i}` }));
    }
    const page1 = await list(k, "?status=open&limit=2");
    expect(page1.items.map((q) => q.text)).toEqual(["q2", "q1"]);
    expect(page1.next_cursor).toEqual(expect.any(String));
    const page2 = await list(k, `?status=open&limit=2&cursor=${page1.next_cursor}`);
    expect(page2).toEqual({ items: [asked[0]], next_cursor: null });
  });
});

describe("questions: a waiting task still ends under its lease", () => {
  async function waiting() {
    const ctx = await heldTask();
    const q = await ask(ctx.agent, { worker_id: "w1", task_id: ctx.task.id, text: "?" });
    expect(await getTask(ctx.reader, ctx.task.id)).toMatchObject({ status: "waiting_input" });
    return { ...ctx, q };
  }

  /** The question is withdrawn, and an answer to it is 409 saying so. */
  async function expectWithdrawn(c: { team: { api_key: string }; reader: string; q: QuestionResponse }) {
    expect(await getQuestion(c.reader, c.q.id)).toMatchObject({ status: "withdrawn", answer: null });
    const res = await post(`/v1/questions/${c.q.id}/answer`, c.team.api_key, { text: "too late" });
    expect((await expectProblem(res, 409)).detail).toMatch(/withdrawn/);
  }

  it("complete, fail and cancel work on a waiting_input task and withdraw its open question; a later answer is 409", async () => {
    const c1 = await waiting();
    expect(await finish(c1.agent, c1.task.id, c1.lease, "complete", { cost_usd: 0.1 })).toMatchObject({ status: "completed" });
    expect(await getWorker(c1.reader, "w1")).toMatchObject({ status: "idle", tasks_completed: 1 });
    await expectWithdrawn(c1);
    expect(await getTask(c1.reader, c1.task.id)).toMatchObject({ status: "completed" });

    const c2 = await waiting();
    expect(await finish(c2.agent, c2.task.id, c2.lease, "fail")).toMatchObject({ status: "pending", lease_expires_at: null });
    // The worker let the task go: not shown waiting on it until its next heartbeat.
    expect(await getWorker(c2.reader, "w1")).toMatchObject({ status: "idle", current_task: null, tasks_completed: 0 });
    await expectWithdrawn(c2);

    const c3 = await waiting();
    const cancelled = await post(`/v1/tasks/${c3.task.id}/cancel`, c3.team.api_key, {});
    expect((await json(cancelled)).status).toBe("cancelled");
    expect(cancelled.status).toBe(200);
    await expectWithdrawn(c3);
    expect(await getTask(c3.reader, c3.task.id)).toMatchObject({ status: "cancelled" });
    expect((await list(c3.reader, "?status=open")).items).toEqual([]);
    expect((await list(c3.reader, "?status=withdrawn")).items.map((q) => q.id)).toEqual([c3.q.id]);
  });

  it("the cron expires a waiting_input task's lease: back to pending, or failed with its attempts used up; its question is withdrawn", async () => {
    const c1 = await waiting();
    await setTimes(c1.task.id, { lease_expires_at: past() });
    await expectProblem(await leaseCall(c1.agent, c1.task.id, "heartbeat", { lease_id: c1.lease }), 409);
    await runCron();
    expect(await getTask(c1.reader, c1.task.id)).toMatchObject({ status: "pending", lease_expires_at: null });
    expect(await getWorker(c1.reader, "w1")).toMatchObject({ status: "lost" });
    await expectWithdrawn(c1);

    const team = await createTeam();
    const k = team.api_key;
    const once = await createTask(k, { max_attempts: 1 });
    const held = await claim(k, "executor", "solo");
    expect(held?.id).toBe(once.id);
    const q = await ask(k, { worker_id: "solo", task_id: once.id, text: "?" });
    await setTimes(once.id, { lease_expires_at: past() });
    await runCron();
    expect(await getTask(k, once.id)).toMatchObject({ status: "failed" });
    expect(await getQuestion(k, q.id)).toMatchObject({ status: "withdrawn" });
  });

  it("an answer after the asking attempt's lease expired is 409 even before the cron ran, and changes nothing", async () => {
    const c1 = await waiting();
    await setTimes(c1.task.id, { lease_expires_at: past() });
    const res = await post(`/v1/questions/${c1.q.id}/answer`, c1.team.api_key, { text: "too late" });
    expect((await expectProblem(res, 409)).detail).toMatch(/lease expired/);
    expect(await getQuestion(c1.reader, c1.q.id)).toMatchObject({ status: "open", answer: null });
    expect(await getTask(c1.reader, c1.task.id)).toMatchObject({ status: "waiting_input" });
    // The cron then takes the task back and withdraws the question, as for any ended attempt.
    await runCron();
    await expectWithdrawn(c1);
  });

  it("a task claimed again after its lease expired asks anew, and the answer wakes it: the old question cannot hold it", async () => {
    const c = await waiting();
    await setTimes(c.task.id, { lease_expires_at: past() });
    await runCron();
    const again = await claim(c.agent, "executor", "w2");
    expect(again?.id).toBe(c.task.id);
    const q2 = await ask(c.agent, { worker_id: "w2", task_id: c.task.id, text: "second" });
    await expectWithdrawn(c);
    expect(await getTask(c.reader, c.task.id)).toMatchObject({ status: "waiting_input", worker_id: "w2" });
    await answer(c.team.api_key, q2.id, "to the second");
    expect(await getTask(c.reader, c.task.id)).toMatchObject({ status: "running" });
    expect(await getWorker(c.reader, "w2")).toMatchObject({ status: "working" });
  });

  it("a worker that failed while waiting, claimed the task again and asked again is woken by the new answer, and may ask once more", async () => {
    const c = await waiting();
    expect(await finish(c.agent, c.task.id, c.lease, "fail")).toMatchObject({ status: "pending" });
    await setTimes(c.task.id, { available_at: past() }); // past the retry backoff
    const again = await claim(c.agent, "executor", "w1");
    expect(again?.id).toBe(c.task.id);
    const q2 = await ask(c.agent, { worker_id: "w1", task_id: c.task.id, text: "second" });
    await answer(c.team.api_key, q2.id, "yes");
    expect(await getTask(c.reader, c.task.id)).toMatchObject({ status: "running" });
    expect(await getWorker(c.reader, "w1")).toMatchObject({ status: "working", current_task: c.task.id });
    await ask(c.agent, { worker_id: "w1", task_id: c.task.id, text: "third" });
    expect((await list(c.reader, "?status=open")).items.map((q) => q.text)).toEqual(["third"]);
  });
});

describe("questions: refused", () => {
  it("409 naming why when the worker does not hold the task, or the task cannot ask; 404 for an unknown task", async () => {
    const { agent, reader, task } = await heldTask();
    const other = await expectProblem(await post("/v1/questions", agent, { worker_id: "w2", task_id: task.id, text: "mine?" }), 409);
    expect(other.detail).toContain("held by worker w1");

    const pending = await createTask(agent, { title: "pending" });
    expect((await expectProblem(await post("/v1/questions", agent, { worker_id: "w1", task_id: pending.id, text: "?" }), 409)).detail).toContain("pending");
    await expectProblem(await post("/v1/questions", agent, { worker_id: "w1", task_id: "task_nope", text: "?" }), 404);

    const first = await ask(agent, { worker_id: "w1", task_id: task.id, text: "first" });
    expect((await expectProblem(await post("/v1/questions", agent, { worker_id: "w1", task_id: task.id, text: "second" }), 409)).detail).toContain("waiting_input");
    // The same ask again (a retry whose first answer was lost) is that question, not a conflict.
    const retried = await post("/v1/questions", agent, { worker_id: "w1", task_id: task.id, text: "first" });
    expect(retried.status).toBe(200);
    expect(await json<QuestionResponse>(retried)).toEqual(first);

    // An expired lease cannot ask, even before the cron takes the task back.
    await setTimes(task.id, { lease_expires_at: past() });
    await env.DB.prepare("UPDATE tasks SET status = 'running' WHERE id = ?").bind(task.id).run();
    expect((await expectProblem(await post("/v1/questions", agent, { worker_id: "w1", task_id: task.id, text: "late" }), 409)).detail).toContain("expired");

    const h = await claim(agent, "executor", "w3");
    expect(h?.id).toBe(pending.id);
    await finish(agent, pending.id, h?.lease.id ?? "", "complete");
    expect((await expectProblem(await post("/v1/questions", agent, { worker_id: "w3", task_id: pending.id, text: "?" }), 409)).detail).toContain("completed");

    // Only the one question was recorded.
    expect((await list(reader)).items.map((q) => q.text)).toEqual(["first"]);
  });

  it("bad input is 400 naming the fields, and records nothing", async () => {
    const { team, agent, reader, task } = await heldTask();
    const k = team.api_key;
    const cases: [unknown, string[]][] = [
      [{}, ["worker_id", "task_id", "text"]],
      [{ worker_id: "w 1", task_id: task.id, text: "?" }, ["worker_id"]],
      [{ worker_id: "w1", task_id: "a:b", text: "?" }, ["task_id"]],
      [{ worker_id: "w1", task_id: task.id, text: "" }, ["text"]],
      [{ worker_id: "w1", task_id: task.id, text: "   " }, ["text"]],
      [{ worker_id: "w1", task_id: task.id, text: "x".repeat(20_001) }, ["text"]],
      [{ worker_id: "w1", task_id: task.id, text: 42 }, ["text"]],
    ];
    for (const [body, paths] of cases) {
      const problem = await expectProblem(await post("/v1/questions", agent, body), 400);
      expect(errorPaths(problem).sort(), JSON.stringify(body).slice(0, 80)).toEqual(paths.sort());
    }
    expect(await getTask(reader, task.id)).toMatchObject({ status: "claimed" });
    const q = await ask(agent, { worker_id: "w1", task_id: task.id, text: "x".repeat(20_000) });

    for (const [body, paths] of [
      [{}, ["text"]],
      [{ text: "" }, ["text"]],
      [{ text: "y".repeat(20_001) }, ["text"]],
    ] as [unknown, string[]][]) {
      expect(errorPaths(await expectProblem(await post(`/v1/questions/${q.id}/answer`, k, body), 400)).sort()).toEqual(paths);
    }
    expect(errorPaths(await expectProblem(await post("/v1/questions/a%3Ab/answer", k, { text: "x" }), 400))).toEqual(["qid"]);
    expect(errorPaths(await expectProblem(await call("/v1/questions/a%3Ab", { key: k }), 400))).toEqual(["qid"]);
    expect(errorPaths(await expectProblem(await call("/v1/questions?status=closed", { key: k }), 400))).toEqual(["status"]);
    expect(errorPaths(await expectProblem(await call("/v1/questions?limit=0", { key: k }), 400))).toEqual(["limit"]);
    expect(errorPaths(await expectProblem(await call("/v1/questions?cursor=bogus", { key: k }), 400))).toEqual(["cursor"]);
    await expectProblem(await call("/v1/questions/q_nope", { key: k }), 404);
    await expectProblem(await post("/v1/questions/q_nope/answer", k, { text: "x" }), 404);
    expect(await getQuestion(reader, q.id)).toMatchObject({ status: "open", answer: null });
    expect(await getTask(reader, task.id)).toMatchObject({ status: "waiting_input" });
  });

  it("scopes: a read key cannot ask or answer, an agent cannot answer (403); no key is 401", async () => {
    const { agent, reader, task } = await heldTask();
    await expectProblem(await post("/v1/questions", reader, { worker_id: "w1", task_id: task.id, text: "?" }), 403);
    expect(await getTask(reader, task.id)).toMatchObject({ status: "claimed" });
    const q = await ask(agent, { worker_id: "w1", task_id: task.id, text: "?" });
    await expectProblem(await post(`/v1/questions/${q.id}/answer`, reader, { text: "no" }), 403);
    await expectProblem(await post(`/v1/questions/${q.id}/answer`, agent, { text: "no" }), 403);
    await expectProblem(await call("/v1/questions"), 401);
    await expectProblem(await call(`/v1/questions/${q.id}`), 401);
    await expectProblem(await call(`/v1/questions/${q.id}/answer`, { method: "POST", json: { text: "no" } }), 401);
    expect(await getQuestion(reader, q.id)).toMatchObject({ status: "open", answer: null });
    expect(await getTask(reader, task.id)).toMatchObject({ status: "waiting_input" });
  });

  it("cross-team: team B gets 404 on every questions route with team A's ids, and sees none of A's questions", async () => {
    const { team: a, agent, reader, task } = await heldTask();
    const b = await createTeam("B");
    const secret = "A-confidential-question";
    const q = await ask(agent, { worker_id: "w1", task_id: task.id, text: secret });

    const hidden = async (res: Response, what: string) => {
      const text = await res.clone().text();
      await expectProblem(res, 404);
      expect(text, what).not.toContain(secret);
    };
    await hidden(await call(`/v1/questions/${q.id}`, { key: b.api_key }), "GET");
    await hidden(await post(`/v1/questions/${q.id}/answer`, b.api_key, { text: "B's answer" }), "answer");
    // Asking about A's task, even as A's worker, is 404: B has no such task.
    await hidden(await post("/v1/questions", b.api_key, { worker_id: "w1", task_id: task.id, text: "B's question" }), "ask");
    expect(await list(b.api_key)).toEqual({ items: [], next_cursor: null });
    expect(await list(b.api_key, "?status=open")).toEqual({ items: [], next_cursor: null });

    expect(await getQuestion(reader, q.id)).toEqual(q);
    expect(await getTask(reader, task.id)).toMatchObject({ status: "waiting_input" });
    expect((await list(a.api_key)).items).toEqual([q]);
  });
});

// Worker heartbeats do not disturb questions (a worker reporting `waiting` itself is fine).
describe("questions: worker heartbeat", () => {
  it("a worker may report waiting itself; the answer moves it back to working", async () => {
    const { team, agent, reader, task } = await heldTask();
    const q = await ask(agent, { worker_id: "w1", task_id: task.id, text: "?" });
    await workerHeartbeat(agent, "w1", { role: "executor", status: "waiting", current_task: task.id });
    await answer(team.api_key, q.id, "ok");
    expect(await getWorker(reader, "w1")).toMatchObject({ status: "working" });
  });
});
