import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { TeamHub } from "../durable-objects/team-hub";
import { APPLIED_TTL_MS } from "../durable-objects/hub";
import worker from "../src/index";
import { dbOf } from "../src/db/client";
import { askQuestion } from "../src/db/questions";
import { cancelTask, findTask } from "../src/db/tasks";
import { type TeamEvent, taskForEvent } from "../src/domain/team-events";
import { blockedEvents, taskEvent, withdrawnEvents, workerEvent } from "../src/lib/task-events";
import { toQuestion } from "../src/lib/task-schemas";
import { publishTeamEvents, teamEvent, teamHub } from "../src/lib/team-stream";
import { SseReader, call, createKey, createTeam, json } from "./helpers";
import { claim, createTask, getTask, leaseCall } from "./task-helpers";
import { getWorker } from "./worker-helpers";

/**
 * The team stream sends each row's records in the order D1 wrote them, whatever order the
 * writes' events reach the hub in: routes publish after their write commits, so two requests
 * at once (or a publication retried through the queue) can arrive in the other order.
 */

async function team() {
  const t = await createTeam();
  const agent = await createKey(t.api_key, ["agent"]);
  const reader = await createKey(t.api_key, ["read"]);
  const teamId = (await json(await call("/v1/team", { key: t.api_key }))).id as string;
  return { operator: t.api_key, agent, reader, teamId };
}

async function openStream(key: string, lastEventId?: number) {
  const res = await call("/v1/stream", { key, headers: lastEventId === undefined ? {} : { "Last-Event-ID": String(lastEventId) } });
  expect(res.status).toBe(200);
  const sse = new SseReader(res);
  expect((await sse.next()).retry).toBe(2000);
  return sse;
}

type Delivered = { id: number; event: string; data: TeamEvent };

async function take(sse: SseReader, n: number): Promise<Delivered[]> {
  const out: Delivered[] = [];
  while (out.length < n) {
    const m = await sse.nextEvent();
    out.push({ id: Number(m.id), event: m.event ?? "", data: JSON.parse(m.data) as TeamEvent });
  }
  return out;
}

/** Events up to and including the one with id `lastId`. */
async function takeThrough(sse: SseReader, lastId: string): Promise<Delivered[]> {
  const out: Delivered[] = [];
  while (out.at(-1)?.data.id !== lastId) out.push(...(await take(sse, 1)));
  return out;
}

type Rec = Record<string, unknown> & { id: string; version: number };

/**
 * A watcher as a client writes one: it keeps, per row, the record the last event about it
 * carried, applying the events in the order the stream sends them (no version check of its own).
 */
function watch(events: TeamEvent[]) {
  const tasks = new Map<string, Rec>();
  const questions = new Map<string, Rec>();
  const workers = new Map<string, Rec>();
  for (const e of events) {
    const d = e.data as { task?: Rec; question?: Rec; worker?: Rec; task_id?: string; blocked_by?: string | null; version?: number };
    if (d.task) tasks.set(d.task.id, d.task);
    if (d.question) questions.set(d.question.id, d.question);
    if (d.worker) workers.set(d.worker.id, d.worker);
    if (d.task_id) {
      const known = tasks.get(d.task_id);
      if (known) tasks.set(d.task_id, { ...known, status: e.type === "task.blocked" ? "blocked" : "pending", blocked_by: d.blocked_by ?? null, version: d.version as number });
    }
  }
  return { tasks, questions, workers };
}

const marker = (n: number): TeamEvent => teamEvent("budget.reached", { day: `marker-${n}` }, new Date().toISOString(), `marker-${crypto.randomUUID()}`);

describe("team stream: records in D1's order", () => {
  it("drops an ask's events that reach the hub after the cancel D1 committed later, so a watcher ends where GET does", async () => {
    const { agent, reader, teamId } = await team();
    const created = await createTask(agent);
    const held = await claim(agent, "executor", "w1");
    expect(held?.id).toBe(created.id);
    const sse = await openStream(reader);
    const snapshot = await sse.nextEvent();
    expect(snapshot.event).toBe("snapshot");

    // The agent's question commits first, then the operator's cancel (which withdraws it)...
    const db = dbOf(env);
    const askedAt = new Date().toISOString();
    const asked = await askQuestion(db, { teamId, id: `q_${crypto.randomUUID()}`, taskId: created.id, workerId: "w1", text: "Which?", now: askedAt });
    if (!asked?.task || !asked.worker) throw new Error("the ask changed nothing");
    const cancelledAt = new Date().toISOString();
    const cancelled = await cancelTask(db, teamId, created.id, cancelledAt);
    if (!cancelled) throw new Error("the cancel changed nothing");
    expect(cancelled.withdrawn.map((q) => q.id)).toEqual([asked.question.id]);
    expect(cancelled.task.version).toBeGreaterThan(asked.task.version);
    expect(cancelled.withdrawn[0]?.version).toBeGreaterThan(asked.question.version);

    // ...but their events reach the hub the other way round, as two requests at once may send them.
    await publishTeamEvents(env, teamId, [taskEvent("task.cancelled", cancelled.task), ...blockedEvents(cancelled.blocked, cancelledAt), ...withdrawnEvents(cancelled.withdrawn, cancelledAt)]);
    await publishTeamEvents(env, teamId, [
      teamEvent("question.asked", { question: toQuestion(asked.question) }, askedAt),
      taskEvent("task.waiting_input", asked.task),
      workerEvent(asked.worker, askedAt),
    ]);
    const end = marker(1);
    await publishTeamEvents(env, teamId, [end]);
    const live = await takeThrough(sse, end.id);
    await sse.close();

    // A watcher applying the stream in order ends where the API is.
    const seen = watch(live.map((e) => e.data));
    const task = await getTask(reader, created.id);
    expect(task).toMatchObject({ status: "cancelled", version: cancelled.task.version });
    expect(seen.tasks.get(created.id)).toEqual(taskForEvent(task));
    const question = await json(await call(`/v1/questions/${asked.question.id}`, { key: reader }));
    expect(question).toMatchObject({ status: "withdrawn" });
    expect(seen.questions.get(asked.question.id)).toEqual(question);
    const { cost_usd: _cost, ...w1 } = await getWorker(reader, "w1");
    expect(seen.workers.get("w1")).toEqual(w1);

    // Live: the cancel's events, and of the ask's only the worker's (no later write changed it);
    // a replay from before them sends the same.
    expect(live.map((e) => e.event)).toEqual(["task.cancelled", "question.withdrawn", "worker.updated", "budget.reached"]);
    const resumed = await openStream(reader, Number(snapshot.id));
    expect(await takeThrough(resumed, end.id)).toEqual(live);
    await resumed.close();
  });

  it("lets through every event at or above the last version sent for its row, and events without one", async () => {
    const { teamId } = await team();
    const hub = env.TEAM_HUB.getByName(teamId);
    const at = new Date().toISOString();
    const ev = (type: TeamEvent["type"], data: Record<string, unknown>) => teamEvent(type, data, at);
    const statuses = async (events: TeamEvent[]) => (await hub.publish(teamId, events)).applied;
    expect(await statuses([ev("task.claimed", { task: { id: "t1", status: "claimed", version: 5 } })])).toBe(1);
    // Two events about one write: both go through.
    expect(await statuses([ev("task.running", { task: { id: "t1", status: "running", version: 5 } })])).toBe(1);
    // An older write's: dropped, whether it names the whole task or only its id.
    expect(await statuses([ev("task.retry_scheduled", { task: { id: "t1", status: "pending", version: 4 } })])).toBe(0);
    expect(await statuses([ev("task.blocked", { task_id: "t1", blocked_by: "t0", version: 3 })])).toBe(0);
    expect(await statuses([ev("task.unblocked", { task_id: "t1", version: 6 })])).toBe(1);
    // Rows of another kind with the same id are their own.
    expect(await statuses([ev("question.asked", { question: { id: "t1", status: "open", version: 0 } })])).toBe(1);
    expect(await statuses([ev("worker.updated", { worker: { id: "t1", status: "idle", version: 1 } })])).toBe(1);
    // No version (a publication queued before rows had one) or no row at all: sent as before.
    expect(await statuses([ev("task.running", { task: { id: "t1", status: "running" } }), ev("budget.reached", { day: "2026-12-01" })])).toBe(2);
  });

  it("drops a stale publication the queue retries after the log dropped the newer event, and keeps the versions with the applied ids", async () => {
    const { operator, agent, teamId } = await team();
    const created = await createTask(agent);
    const held = await claim(agent, "executor", "w1");
    if (!held) throw new Error("nothing claimed");
    // A first heartbeat makes the task running; its event is the one the hub could not take.
    const beat = await leaseCall(agent, created.id, "heartbeat", { lease_id: held.lease.id });
    const running = await json(beat);
    expect(running).toMatchObject({ status: "running", version: 2 });
    const cancelled = await json(await call(`/v1/tasks/${created.id}/cancel`, { method: "POST", key: operator }));
    expect(cancelled).toMatchObject({ status: "cancelled", version: 3 });
    const hub = teamHub(env, teamId);
    const object = env.TEAM_HUB.getByName(teamId);
    const versions = () => runInDurableObject(object, (h: TeamHub) => h.recordVersionCount());
    // The task and the worker (two rows) are remembered.
    expect(await versions()).toBe(2);

    // More events than the log keeps (STREAM_HISTORY is 20 in tests) push the cancel out of it.
    await publishTeamEvents(env, teamId, Array.from({ length: 25 }, (_, i) => marker(i)));
    expect((await hub.storageCounts()).events).toBe(20);
    const before = (await hub.storageCounts()).last_seq;
    // The stale event arrives through the queue: acked, and not sent.
    const row = await findTask(dbOf(env), teamId, created.id);
    if (!row) throw new Error("no task");
    const stale = taskEvent("task.running", { ...row, status: "running", version: running.version });
    const batch = createMessageBatch("switchboard-callbacks", [{ id: `msg-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 2, body: { kind: "team-events", team_id: teamId, events: [stale] } }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toHaveLength(1);
    expect((await hub.storageCounts()).last_seq).toBe(before);

    // Forgotten with the applied ids, by the same alarm, once older than their TTL.
    await runInDurableObject(object, (_h: TeamHub, state) => {
      state.storage.sql.exec("UPDATE team_records SET sent_at = ?", Date.now() - APPLIED_TTL_MS - 1000);
      state.storage.sql.exec("UPDATE hub_applied SET applied_at = ?", Date.now() - APPLIED_TTL_MS - 1000);
    });
    expect(await runDurableObjectAlarm(object)).toBe(true);
    expect(await versions()).toBe(0);
    expect((await hub.storageCounts()).applied).toBe(0);
  });

  it("gives every write to a task, question or worker row a higher version, and the stream carries it", async () => {
    const { operator, agent, reader } = await team();
    const sse = await openStream(reader);
    expect((await sse.nextEvent()).event).toBe("snapshot");
    const created = await createTask(agent);
    expect(created.version).toBe(0);
    const held = await claim(agent, "executor", "w1");
    if (!held) throw new Error("nothing claimed");
    await json(await leaseCall(agent, created.id, "heartbeat", { lease_id: held.lease.id }));
    const q = await json(await call("/v1/questions", { method: "POST", key: agent, json: { worker_id: "w1", task_id: created.id, text: "Which?" } }));
    expect(q.version).toBe(0);
    const answered = await json(await call(`/v1/questions/${q.id}/answer`, { method: "POST", key: operator, json: { text: "That one." } }));
    expect(answered.version).toBe(1);
    await json(await leaseCall(agent, created.id, "complete", { lease_id: held.lease.id }));
    const done = await getTask(reader, created.id);
    // created, claimed, running, waiting_input, running, completed.
    expect(done).toMatchObject({ status: "completed", version: 5 });

    // created; claimed + worker; running; asked + waiting_input + worker; answered + running + worker; completed + worker.
    const events = await take(sse, 12);
    const taskVersions = events.filter((e) => e.event.startsWith("task.")).map((e) => (e.data.data.task as Rec).version);
    expect(taskVersions).toEqual([0, 1, 2, 3, 4, 5]);
    const workerVersions = events.filter((e) => e.event === "worker.updated").map((e) => (e.data.data.worker as Rec).version);
    expect(workerVersions).toEqual([...workerVersions].sort((a, b) => a - b));
    expect(new Set(workerVersions).size).toBe(workerVersions.length);
    expect((await getWorker(reader, "w1")).version).toBe(workerVersions.at(-1));
    await sse.close();
  });
});
