import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { teamHub } from "../src/lib/team-stream";
import { SseReader, call, createKey, createTeam, json } from "./helpers";
import { claim, createTask, leaseCall, past, setTimes } from "./task-helpers";
import { setTeam, workerHeartbeat } from "./worker-helpers";

const runCron = () => worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, createExecutionContext());

async function openTeamStream(key: string, headers: Record<string, string> = {}, query = "") {
  const res = await call(`/v1/stream${query}`, { key, headers });
  expect(res.status, res.status === 200 ? "" : await res.text()).toBe(200);
  return new SseReader(res);
}

/** Skips the retry block and returns the snapshot. */
async function snapshotOf(sse: SseReader) {
  expect((await sse.next()).retry).toBe(2000);
  const snap = await sse.nextEvent();
  expect(snap.event).toBe("snapshot");
  return { id: Number(snap.id), data: JSON.parse(snap.data) };
}

/** The next `n` events as {id, event, data}. */
async function take(sse: SseReader, n: number) {
  const out: { id: number; event: string; data: any }[] = [];
  while (out.length < n) {
    const m = await sse.nextEvent();
    out.push({ id: Number(m.id), event: m.event ?? "", data: JSON.parse(m.data) });
  }
  return out;
}

/** The i-th item, which the test expects to be there. */
function nth<T>(list: T[], i: number): T {
  const item = list[i];
  if (item === undefined) throw new Error(`no item ${i} in ${JSON.stringify(list)}`);
  return item;
}

async function team() {
  const t = await createTeam();
  const agent = await createKey(t.api_key, ["agent"]);
  const reader = await createKey(t.api_key, ["read"]);
  return { operator: t.api_key, agent, reader };
}

describe("team stream: GET /v1/stream", () => {
  it("starts with a snapshot read from D1: task counts, workers, open questions", async () => {
    const { agent, reader } = await team();
    await createTask(agent, { title: "one" });
    await createTask(agent, { title: "two" });
    const held = await claim(agent, "executor", "w1");
    await call("/v1/questions", { method: "POST", key: agent, json: { worker_id: "w1", task_id: held?.id, text: "Which?" } }).then(json);
    const sse = await openTeamStream(reader);
    const snap = await snapshotOf(sse);
    expect(snap.data.tasks).toMatchObject({ pending: 1, waiting_input: 1, completed: 0 });
    expect(snap.data.workers).toEqual([expect.objectContaining({ id: "w1", status: "waiting", current_task: held?.id })]);
    expect(snap.data.open_questions).toEqual([expect.objectContaining({ task_id: held?.id, text: "Which?" })]);
    // The snapshot's id is the last event's: resuming from it replays nothing missed.
    expect(snap.id).toBeGreaterThan(0);
    await sse.close();
  });

  it("carries a task's life: created, claimed (with the worker), running, completed (without description, result or lease)", async () => {
    const { agent, reader } = await team();
    const sse = await openTeamStream(reader);
    await snapshotOf(sse);
    const task = await createTask(agent, { title: "build it", description: "# Long\nMarkdown" });
    const held = await claim(agent, "executor", "w1");
    const lease = held?.lease.id as string;
    await json(await leaseCall(agent, task.id, "heartbeat", { lease_id: lease }));
    await json(await leaseCall(agent, task.id, "heartbeat", { lease_id: lease })); // no event: nothing changed
    await json(await leaseCall(agent, task.id, "complete", { lease_id: lease, result: "done", cost_usd: 0.5 }));
    const events = await take(sse, 6);
    expect(events.map((e) => e.event)).toEqual(["task.created", "task.claimed", "worker.updated", "task.running", "task.completed", "worker.updated"]);
    expect(events.map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6].map((n) => n + nth(events, 0).id - 1));
    expect(nth(events, 0).data).toMatchObject({ type: "task.created", data: { task: { id: task.id, title: "build it", status: "pending" } } });
    expect(nth(events, 1).data.data).toMatchObject({ worker_id: "w1", task: { id: task.id, status: "claimed", worker_id: "w1" } });
    expect(nth(events, 2).data.data.worker).toMatchObject({ id: "w1", status: "working", current_task: task.id });
    expect(nth(events, 4).data.data.task).toMatchObject({ status: "completed", cost_usd: 0.5 });
    expect(nth(events, 5).data.data.worker).toMatchObject({ id: "w1", status: "idle", current_task: null, tasks_completed: 1 });
    for (const e of events.filter((e) => e.event.startsWith("task."))) {
      expect(Object.keys(e.data.data.task)).not.toContain("description");
      expect(Object.keys(e.data.data.task)).not.toContain("result");
      expect(JSON.stringify(e.data)).not.toContain(lease);
    }
    expect(nth(events, 0).data.at).toEqual(expect.any(String));
    expect(nth(events, 0).data.received_at).toEqual(expect.any(String));
    await sse.close();
  });

  it("announces task.running once however many first heartbeats race, and none for a task waiting for an answer", async () => {
    const { agent, reader } = await team();
    const task = await createTask(agent);
    const held = await claim(agent, "executor", "w1");
    const lease = held?.lease.id as string;
    const sse = await openTeamStream(reader);
    await snapshotOf(sse);
    const beats = await Promise.all(Array.from({ length: 4 }, () => leaseCall(agent, task.id, "heartbeat", { lease_id: lease })));
    for (const beat of beats) expect(await json(beat)).toMatchObject({ id: task.id, status: "running" });
    const asked = await json(await call("/v1/questions", { method: "POST", key: agent, json: { worker_id: "w1", task_id: task.id, text: "Which?" } }));
    // Waiting for an answer, a heartbeat extends the lease and leaves the status alone.
    expect(await json(await leaseCall(agent, task.id, "heartbeat", { lease_id: lease }))).toMatchObject({ status: "waiting_input" });
    await createTask(agent, { title: "marker" });
    const events = await take(sse, 5);
    expect(events.map((e) => e.event)).toEqual(["task.running", "question.asked", "task.waiting_input", "worker.updated", "task.created"]);
    expect(asked.id).toMatch(/^q_/);
    await sse.close();
  });

  it("a late fail, after the task failed for good but before its dependents were blocked (the cron's two steps), is 409 and announces what it blocked", async () => {
    const { agent, reader } = await team();
    const task = await createTask(agent, { max_attempts: 1 });
    const dependent = await createTask(agent, { title: "after it", depends_on: [task.id] });
    const held = await claim(agent);
    // The cron's first step alone: failed for good, dependents not yet blocked.
    await env.DB.prepare("UPDATE tasks SET status = 'failed', lease_id = NULL, lease_expires_at = NULL, completed_at = ? WHERE id = ?").bind(new Date().toISOString(), task.id).run();
    const sse = await openTeamStream(reader);
    await snapshotOf(sse);
    const late = await leaseCall(agent, task.id, "fail", { lease_id: held?.lease.id });
    expect(late.status).toBe(409);
    expect((await json(late)).detail).toContain("failed");
    const [blocked] = await take(sse, 1);
    expect(blocked).toMatchObject({ event: "task.blocked", data: { data: { task_id: dependent.id, blocked_by: task.id } } });
    await sse.close();
  });

  it("announces retries, failure for good and the dependents it blocks; a retry unblocks them", async () => {
    const { operator, agent, reader } = await team();
    const first = await createTask(agent, { title: "first", max_attempts: 2 });
    const second = await createTask(agent, { title: "second", depends_on: [first.id] });
    const sse = await openTeamStream(reader);
    await snapshotOf(sse);
    const a = await claim(agent);
    await json(await leaseCall(agent, first.id, "fail", { lease_id: a?.lease.id }));
    await setTimes(first.id, { available_at: past() });
    const b = await claim(agent);
    await json(await leaseCall(agent, first.id, "fail", { lease_id: b?.lease.id }));
    const events = await take(sse, 9);
    // Each fail lets the worker go (idle, no current task): announced after what the task did.
    expect(events.map((e) => e.event)).toEqual(["task.claimed", "worker.updated", "task.retry_scheduled", "worker.updated", "task.claimed", "worker.updated", "task.failed", "task.blocked", "worker.updated"]);
    expect(nth(events, 7).data.data).toEqual({ task_id: second.id, blocked_by: first.id, version: 1 });
    expect(nth(events, 8).data.data.worker).toMatchObject({ status: "idle", current_task: null });
    const retried = await call(`/v1/tasks/${first.id}/retry`, { method: "POST", key: operator });
    expect(retried.status).toBe(200);
    await retried.text();
    expect((await take(sse, 2)).map((e) => [e.event, e.data.data.task?.id ?? e.data.data.task_id])).toEqual([
      ["task.retried", first.id],
      ["task.unblocked", second.id],
    ]);
    const cancelled = await call(`/v1/tasks/${first.id}/cancel`, { method: "POST", key: operator });
    await cancelled.text();
    expect((await take(sse, 2)).map((e) => e.event)).toEqual(["task.cancelled", "task.blocked"]);
    await sse.close();
  });

  it("announces questions asked and answered, with the worker waiting and working again", async () => {
    const { operator, agent, reader } = await team();
    const task = await createTask(agent);
    const held = await claim(agent, "executor", "w1");
    const sse = await openTeamStream(reader);
    await snapshotOf(sse);
    const asked = await json(await call("/v1/questions", { method: "POST", key: agent, json: { worker_id: "w1", task_id: task.id, text: "Postgres or SQLite?" } }));
    const answered = await call(`/v1/questions/${asked.id}/answer`, { method: "POST", key: operator, json: { text: "SQLite" } });
    expect(answered.status).toBe(200);
    await answered.text();
    const events = await take(sse, 6);
    expect(events.map((e) => e.event)).toEqual(["question.asked", "task.waiting_input", "worker.updated", "question.answered", "task.running", "worker.updated"]);
    expect(nth(events, 0).data.data.question).toMatchObject({ id: asked.id, text: "Postgres or SQLite?", status: "open" });
    expect(nth(events, 1).data.data.task).toMatchObject({ id: task.id, status: "waiting_input" });
    expect(nth(events, 2).data.data.worker).toMatchObject({ status: "waiting" });
    expect(nth(events, 3).data.data.question).toMatchObject({ id: asked.id, answer: "SQLite", status: "answered" });
    expect(nth(events, 4).data.data.task).toMatchObject({ id: task.id, status: "running" });
    expect(nth(events, 5).data.data.worker).toMatchObject({ status: "working" });
    expect(held).not.toBeNull();
    await sse.close();
  });

  it("announces a worker's status only when it changes, and the cron's expired leases and lost workers", async () => {
    const { agent, reader } = await team();
    const task = await createTask(agent);
    const sse = await openTeamStream(reader);
    await snapshotOf(sse);
    await workerHeartbeat(agent, "w9", { role: "executor", status: "idle" });
    await workerHeartbeat(agent, "w9", { role: "executor", status: "idle" });
    await workerHeartbeat(agent, "w9", { role: "executor", status: "working", current_task: task.id });
    const held = await claim(agent, "executor", "w9");
    await setTimes(task.id, { lease_expires_at: past() });
    await runCron();
    const events = await take(sse, 6);
    expect(events.map((e) => e.event)).toEqual(["worker.updated", "worker.updated", "task.claimed", "worker.updated", "task.lease_expired", "worker.updated"]);
    expect(nth(events, 4).data.data).toMatchObject({ reason: "lease expired", task: { id: task.id, status: "pending" } });
    expect(nth(events, 5).data.data.worker).toMatchObject({ id: "w9", status: "lost" });
    expect(held?.id).toBe(task.id);
    await sse.close();
  });

  it("announces the spent budget once a day, however many claims it stops", async () => {
    const { operator, agent, reader } = await team();
    await setTeam(operator, { daily_budget_usd: 1 });
    const spent = await createTask(agent);
    const held = await claim(agent);
    await json(await leaseCall(agent, spent.id, "complete", { lease_id: held?.lease.id, cost_usd: 1.5 }));
    await createTask(agent);
    const sse = await openTeamStream(reader);
    await snapshotOf(sse);
    for (let i = 0; i < 3; i++) expect((await call("/v1/tasks/claim", { method: "POST", key: agent, json: { worker_id: "w1", role: "executor" } }).then(async (r) => (await r.text(), r.status)))).toBe(429);
    await createTask(agent, { title: "marker" });
    const events = await take(sse, 2);
    expect(events.map((e) => e.event)).toEqual(["budget.reached", "task.created"]);
    expect(nth(events, 0).data.data).toMatchObject({ daily_budget_usd: 1, spent_usd: 1.5, day: new Date().toISOString().slice(0, 10) });
    await sse.close();
  });

  it("replays after Last-Event-ID with no gap, and another team's stream sees none of it", async () => {
    const a = await team();
    const b = await team();
    const first = await openTeamStream(a.reader);
    await snapshotOf(first);
    await createTask(a.agent, { title: "t1" });
    const [seen] = await take(first, 1);
    if (!seen) throw new Error("no event");
    await first.close();
    await createTask(a.agent, { title: "t2" });
    await createTask(a.agent, { title: "t3" });
    const resumed = await openTeamStream(a.reader, { "Last-Event-ID": String(seen.id) });
    expect((await resumed.next()).retry).toBe(2000);
    const replay = await take(resumed, 2);
    expect(replay.map((e) => [e.id, e.data.data.task.title])).toEqual([
      [seen.id + 1, "t2"],
      [seen.id + 2, "t3"],
    ]);
    await resumed.close();
    // Team B: an empty snapshot, and none of A's events (its own first event is number 1).
    const other = await openTeamStream(b.reader);
    const snap = await snapshotOf(other);
    expect(snap.data).toEqual({ tasks: expect.objectContaining({ pending: 0 }), workers: [], open_questions: [] });
    await createTask(b.agent, { title: "b's" });
    const [own] = await take(other, 1);
    expect(own).toMatchObject({ id: 1, data: { data: { task: { title: "b's" } } } });
    await other.close();
  });

  it("works with a stream token in the query, and needs a key otherwise", async () => {
    const { reader } = await team();
    const minted = await json(await call("/v1/stream-tokens", { method: "POST", key: reader, json: { path: "/v1/stream" } }));
    const res = await call(`/v1/stream?access_token=${minted.token}`);
    expect(res.status).toBe(200);
    await res.body?.cancel();
    const anonymous = await call("/v1/stream");
    expect(anonymous.status).toBe(401);
    await anonymous.text();
  });

  it("sends heartbeat comments while idle", async () => {
    const { reader } = await team();
    const sse = await openTeamStream(reader);
    await snapshotOf(sse);
    expect((await sse.next(3000)).comment).toBe("heartbeat");
    await sse.close();
  });

  it("applies a publication once, so the queue's retry of one the hub already took adds nothing", async () => {
    const { operator, agent } = await team();
    const task = await createTask(agent);
    const teamId = (await json(await call("/v1/team", { key: operator }))).id as string;
    expect(teamId).toMatch(/^team_/);
    const hub = teamHub(env, teamId);
    const before = await hub.storageCounts();
    const event = { id: "tev_again", type: "task.created" as const, at: new Date().toISOString(), data: { task: { id: task.id } } };
    expect(await hub.publish(teamId, [event])).toEqual({ applied: 1 });
    expect(await hub.publish(teamId, [event])).toEqual({ applied: 0 });
    expect((await hub.storageCounts()).last_seq).toBe(before.last_seq + 1);
  });

  it("takes from the queue the events the hub could not take at once, acking them, alongside callbacks", async () => {
    const { operator, reader } = await team();
    const teamId = (await json(await call("/v1/team", { key: operator }))).id as string;
    expect(teamId).toMatch(/^team_/);
    const sse = await openTeamStream(reader);
    await snapshotOf(sse);
    const event = { id: `tev_${crypto.randomUUID()}`, type: "task.created", at: new Date().toISOString(), data: { task: { id: "task_late", title: "late" } } };
    const message = { kind: "team-events", team_id: teamId, events: [event] };
    const batch = createMessageBatch("switchboard-callbacks", [{ id: `msg-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body: message }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toHaveLength(1);
    const [delivered] = await take(sse, 1);
    expect(delivered).toMatchObject({ event: "task.created", data: { id: event.id, data: { task: { title: "late" } } } });
    await sse.close();
  });
});
