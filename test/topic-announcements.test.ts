import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { SessionHub } from "../durable-objects/session-hub";
import { sessionHub, topicHub } from "../src/lib/hubs";
import { applyCallbackMessage } from "../src/queue/consumer";
import type { CallbackMessage } from "../src/queue/messages";
import { SseReader, call, createSession, createTeam, eventually, json, postEvents, stepEvent, uid } from "./helpers";

const message = (team: string, events: unknown[]): CallbackMessage => ({ kind: "callbacks", team_id: team, request_id: uid("r"), events: events as never });
const topicAdded = (sid: string, tid: string, hypothesis?: string, id = uid("ta")) => ({ id, type: "topic_added", session_id: sid, data: { topic_id: tid, ...(hypothesis !== undefined ? { hypothesis } : {}) } });

async function openSession(key: string, sid: string, lastEventId?: number) {
  const res = await call(`/v1/sessions/${sid}/stream${lastEventId === undefined ? "" : `?last_event_id=${lastEventId}`}`, { key });
  expect(res.status).toBe(200);
  const sse = new SseReader(res);
  expect((await sse.next()).retry).toBeGreaterThan(0);
  return sse;
}

/** The next event (not a heartbeat) within `ms`: nextEvent alone would wait through heartbeats forever. */
async function eventWithin(sse: SseReader, ms = 5000) {
  const until = Date.now() + ms;
  for (;;) {
    const m = await sse.next(Math.max(1, until - Date.now()));
    if (m.event !== undefined) return m;
    if (Date.now() > until) throw new Error(`no event within ${ms} ms`);
  }
}

/** The topic_added events the session stream logged up to `seq`, read back by replay. */
async function announcedUpTo(key: string, sid: string, seq: number): Promise<{ id: string; topic_id: string; hypothesis?: string }[]> {
  if (seq === 0) return [];
  const sse = await openSession(key, sid, 0);
  const found: { id: string; topic_id: string; hypothesis?: string }[] = [];
  for (let i = 1; i <= seq; i++) {
    const m = await sse.nextEvent();
    expect(m.id).toBe(String(i));
    const body = JSON.parse(m.data);
    if (m.event === "topic_added") found.push({ id: body.id, ...body.data });
  }
  await sse.close();
  return found;
}

/** A fresh session stream: its snapshot must list every topic announced up to the snapshot's id. */
async function openCheckingSnapshot(key: string, sid: string) {
  const sse = await openSession(key, sid);
  const snap = await sse.nextEvent();
  expect(snap.event).toBe("snapshot");
  const listed = (JSON.parse(snap.data).topics as { id: string }[]).map((t) => t.id);
  const announced = (await announcedUpTo(key, sid, Number(snap.id))).map((a) => a.topic_id);
  expect(listed, `snapshot ${snap.id} lists ${JSON.stringify(listed)}; announced by then: ${JSON.stringify(announced)}`).toEqual(expect.arrayContaining(announced));
  return { sse, listed };
}

/** Makes D1 refuse the topic's index row, the stand-in for any failing index write. */
async function refuseTopicRow(tid: string) {
  const name = `refuse_${tid.replace(/\W/g, "_")}`;
  await env.DB.prepare(`CREATE TRIGGER "${name}" BEFORE INSERT ON topics WHEN NEW.id = '${tid}' BEGIN SELECT RAISE(ABORT, 'index down'); END`).run();
  return () => env.DB.prepare(`DROP TRIGGER IF EXISTS "${name}"`).run();
}

describe("a session stream's snapshot lists every topic announced up to its id", () => {
  it("an agent's topic_added whose index row fails is announced only once the row is written, and then reaches the stream", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const tid = uid("t");
    const event = topicAdded(sid, tid, "h");
    const msg = message(team.team_id, [event]);
    const restore = await refuseTopicRow(tid);
    try {
      await expect(applyCallbackMessage(env, msg)).rejects.toThrow(/index down/);
      // A watcher connecting while the write is retried (the whole backoff).
      const { sse, listed } = await openCheckingSnapshot(team.api_key, sid);
      expect(listed).not.toContain(tid);
      await restore();
      await applyCallbackMessage(env, msg); // the redelivery
      const added = await eventWithin(sse);
      expect(added.event).toBe("topic_added");
      expect(JSON.parse(added.data)).toMatchObject({ id: event.id, data: { topic_id: tid, hypothesis: "h" } });
      expect((await sse.next(1500)).comment).toBe("heartbeat");
      await sse.close();
      const after = await openCheckingSnapshot(team.api_key, sid);
      expect(after.listed).toEqual([tid]);
      await after.sse.close();
    } finally {
      await restore();
    }
  });

  it("a topic created by its first event is announced only once its row is written, and a redelivery announces it when the first try failed", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const tid = uid("t");
    const msg = message(team.team_id, [stepEvent(sid, tid, "step_started", { step: "explore" })]);
    const restore = await refuseTopicRow(tid);
    try {
      await expect(applyCallbackMessage(env, msg)).rejects.toThrow(/index down/);
      const { sse, listed } = await openCheckingSnapshot(team.api_key, sid);
      expect(listed).not.toContain(tid);
      await restore();
      // Redelivered (its event a duplicate now): the topic is indexed and announced, once.
      await applyCallbackMessage(env, msg);
      const added = await eventWithin(sse);
      expect(added.event).toBe("topic_added");
      expect(JSON.parse(added.data)).toMatchObject({ id: `api:topic_added:${tid}`, data: { topic_id: tid } });
      await applyCallbackMessage(env, msg);
      expect((await sse.next(1500)).comment).toBe("heartbeat");
      await sse.close();
      const after = await openCheckingSnapshot(team.api_key, sid);
      expect(after.listed).toEqual([tid]);
      await after.sse.close();
    } finally {
      await restore();
    }
  });
});

describe("one announcement per topic, with the hypothesis the topic has", () => {
  it("an agent's topic_added for a topic the API created is accepted, not announced again", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const res = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1", hypothesis: "h" } });
    expect(res.status).toBe(201);
    await res.json();
    const late = topicAdded(sid, "t1", "other", "ta1");
    expect((await postEvents(team.api_key, [late])).status).toBe(202);
    await eventually(() => sessionHub(env, team.team_id, sid).storageCounts(), (c) => c.applied >= 2);
    const counts = await sessionHub(env, team.team_id, sid).storageCounts();
    expect(await announcedUpTo(team.api_key, sid, counts.last_seq)).toEqual([{ id: "api:topic_added:t1", topic_id: "t1", hypothesis: "h" }]);
    expect((await json(await call(`/v1/sessions/${sid}/topics/t1`, { key: team.api_key }))).hypothesis).toBe("h");
    const s = await json(await call(`/v1/sessions/${sid}`, { key: team.api_key }));
    expect(s.rejected_events).toEqual([]);
  });

  it("a topic announced by the platform without a hypothesis is announced again only by the topic_added that gives it one", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const sse = await openSession(team.api_key, sid);
    expect((await sse.nextEvent()).event).toBe("snapshot");
    await (await postEvents(team.api_key, [stepEvent(sid, "t7", "step_started", { step: "explore" })])).json();
    expect(JSON.parse((await eventWithin(sse)).data)).toMatchObject({ id: "api:topic_added:t7", data: { topic_id: "t7" } });
    const fills = topicAdded(sid, "t7", "late");
    await (await postEvents(team.api_key, [fills])).json();
    const filled = await eventWithin(sse);
    expect(filled.event).toBe("topic_added");
    expect(JSON.parse(filled.data)).toMatchObject({ id: fills.id, data: { topic_id: "t7", hypothesis: "late" } });
    // Neither another hypothesis nor none is news now.
    await (await postEvents(team.api_key, [topicAdded(sid, "t7", "again"), topicAdded(sid, "t7")])).json();
    await eventually(() => sessionHub(env, team.team_id, sid).storageCounts(), (c) => c.applied >= 4);
    expect((await sse.next(1500)).comment).toBe("heartbeat");
    await sse.close();
    expect((await json(await call(`/v1/sessions/${sid}/topics/t7`, { key: team.api_key }))).hypothesis).toBe("late");
    expect((await sessionHub(env, team.team_id, sid).storageCounts()).last_seq).toBe(2);
  });

  it("a topic_added whose hypothesis the topic did not take announces the topic with its own", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    // Another consumer's topic_added ("a") reached the topic first and is yet to reach the session.
    await topicHub(env, team.team_id, sid, "t1").ensure({ id: "t1", session_id: sid, team_id: team.team_id, hypothesis: "a" });
    await applyCallbackMessage(env, message(team.team_id, [topicAdded(sid, "t1", "b")]));
    // Announced already (should the other request never arrive), with the topic's hypothesis.
    const announced = [{ id: "api:topic_added:t1", topic_id: "t1", hypothesis: "a" }];
    expect(await announcedUpTo(team.api_key, sid, (await sessionHub(env, team.team_id, sid).storageCounts()).last_seq)).toEqual(announced);
    // The other request's arrives: the topic was announced as it is, so nothing more.
    await applyCallbackMessage(env, message(team.team_id, [topicAdded(sid, "t1", "a")]));
    const counts = await sessionHub(env, team.team_id, sid).storageCounts();
    expect(await announcedUpTo(team.api_key, sid, counts.last_seq)).toEqual(announced);
    expect((await json(await call(`/v1/sessions/${sid}/topics/t1`, { key: team.api_key }))).hypothesis).toBe("a");
  });

  it("a session hub older than its table of announced topics fills it from its log", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const res = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1", hypothesis: "h" } });
    await res.json();
    const stub = env.SESSION_HUB.getByName(`${team.team_id}:${sid}`);
    await runInDurableObject(stub, (_hub: SessionHub, state) => {
      state.storage.sql.exec(`DROP TABLE session_topics`);
    });
    await evictDurableObject(stub);
    await applyCallbackMessage(env, message(team.team_id, [topicAdded(sid, "t1", "h")]));
    expect((await sessionHub(env, team.team_id, sid).storageCounts()).last_seq).toBe(1);
  });

  it("a POST for a topic an agent's event already created in its hub is 409, and indexes and announces the hub's topic (not the body's)", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    // An agent's event reached the topic's hub first, before its index row: the topic has "other".
    await topicHub(env, team.team_id, sid, "t1").ensure({ id: "t1", session_id: sid, team_id: team.team_id, hypothesis: "other" });
    const before = (await sessionHub(env, team.team_id, sid).storageCounts()).last_seq;
    const taken = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1", hypothesis: "h", max_turns: { design: 3 } } });
    expect(taken.status).toBe(409);
    expect((await json(taken)).detail).toMatch(/already exists/);
    // The index row says what the hub has, not what the refused body asked for.
    const listed = await json<{ items: { id: string; hypothesis: string | null }[] }>(await call(`/v1/sessions/${sid}/topics`, { key: team.api_key }));
    expect(listed.items).toEqual([expect.objectContaining({ id: "t1", hypothesis: "other" })]);
    const topic = await json(await call(`/v1/sessions/${sid}/topics/t1`, { key: team.api_key }));
    expect(topic.hypothesis).toBe("other");
    expect(topic.steps.design.max_turns).toBe(15);
    // Announced with the hypothesis the topic has, once: the consumer's announcement of the
    // same topic (same event id) adds nothing.
    expect((await sessionHub(env, team.team_id, sid).storageCounts()).last_seq).toBe(before + 1);
    await applyCallbackMessage(env, message(team.team_id, [stepEvent(sid, "t1", "step_started", { step: "design" })]));
    expect((await sessionHub(env, team.team_id, sid).storageCounts()).last_seq).toBe(before + 1);
    const added = await announcedUpTo(team.api_key, sid, before + 1);
    expect(added).toEqual([{ id: "api:topic_added:t1", topic_id: "t1", hypothesis: "other" }]);
  });
});
