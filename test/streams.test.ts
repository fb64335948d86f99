import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sessionHub, topicHub } from "../src/lib/hubs";
import { SseReader, call, createTeam, eventually, expectProblem, json, postEvents, sessionWithTopic, stepEvent, summary, uid } from "./helpers";

async function openTopic(key: string, sid: string, tid: string, headers: Record<string, string> = {}, query = "") {
  const res = await call(`/v1/sessions/${sid}/topics/${tid}/stream${query}`, { key, headers });
  expect(res.status).toBe(200);
  return new SseReader(res);
}

/** Posts `n` usage events one request each and waits until the hub has applied them all. */
async function postUsage(key: string, team: string, sid: string, tid: string, n: number) {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = stepEvent(sid, tid, "usage.reported", { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }] });
    ids.push(e.id);
    const res = await postEvents(key, [e]);
    expect(res.status).toBe(202);
    await res.json();
  }
  await eventually(() => topicHub(env, team, sid, tid).storageCounts(), (c) => c.last_seq >= n);
  return ids;
}

describe("SSE wire format", () => {
  it("starts with retry, then a snapshot whose id is the current sequence, exactly as the spec frames it", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const sse = await openTopic(team.api_key, sid, tid);
    const first = await sse.next();
    expect(sse.raw.join("").startsWith("retry: 2000\n\n")).toBe(true);
    expect(first.retry).toBe(2000);
    const snap = await sse.next();
    expect(snap).toMatchObject({ id: "0", event: "snapshot" });
    expect(JSON.parse(snap.data)).toMatchObject({ id: tid, status: "created", current_step: null });
    expect(sse.raw.join("")).toMatch(/^retry: 2000\n\nid: 0\nevent: snapshot\ndata: \{[^\n]*\}\n\n/);
    await sse.close();
  });

  it("sends heartbeat comments while idle", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const sse = await openTopic(team.api_key, sid, tid);
    await sse.next();
    await sse.next();
    const beat = await sse.next(3000);
    expect(beat.comment).toBe("heartbeat");
    expect(sse.raw.join("")).toContain("\n\n: heartbeat\n\n");
    await sse.close();
  });

  it("answers with identity encoding and no caching, so nothing buffers the stream", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const res = await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: team.api_key });
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-cache, no-transform");
    await res.body?.cancel();
  });
});

describe("replay with Last-Event-ID", () => {
  it("replays every later event, then goes live, with no gap and no duplicate (header and query forms)", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const ids = await postUsage(team.api_key, team.team_id, sid, tid, 5);

    for (const [headers, query] of [[{ "Last-Event-ID": "2" }, ""], [{}, "?last_event_id=2"]] as const) {
      const sse = await openTopic(team.api_key, sid, tid, headers, query);
      expect((await sse.next()).retry).toBe(2000);
      const replayed = [await sse.nextEvent(), await sse.nextEvent(), await sse.nextEvent()];
      expect(replayed.map((m) => m.id)).toEqual(["3", "4", "5"]);
      expect(replayed.map((m) => JSON.parse(m.data).id)).toEqual(ids.slice(2));
      expect(replayed.every((m) => m.event === "usage.reported")).toBe(true);
      await sse.close();
    }

    const sse = await openTopic(team.api_key, sid, tid, { "Last-Event-ID": "5" });
    await sse.next();
    const live = stepEvent(sid, tid, "step_started", { step: "review" });
    await (await postEvents(team.api_key, [live])).json();
    const next = await sse.nextEvent();
    expect(next).toMatchObject({ id: "6", event: "step_started" });
    expect(JSON.parse(next.data).id).toBe(live.id);
    await sse.close();
  });

  it("replays from storage after the Durable Object was evicted", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    await postUsage(team.api_key, team.team_id, sid, tid, 3);
    const teamId = team.team_id;
    await evictDurableObject(env.TOPIC_HUB.getByName(`${teamId}:${sid}:${tid}`));
    const sse = await openTopic(team.api_key, sid, tid, { "Last-Event-ID": "1" });
    await sse.next();
    expect([(await sse.nextEvent()).id, (await sse.nextEvent()).id]).toEqual(["2", "3"]);
    await sse.close();
    const topic = await json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key: team.api_key }));
    expect(topic.steps.explore.tools[0]).toMatchObject({ name: "bash", calls: 3 });
  });

  it("keeps a bounded history and answers an id past it, or ahead of it, with reset and a fresh snapshot", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    await postUsage(team.api_key, team.team_id, sid, tid, 25); // STREAM_HISTORY is 20 in tests
    const teamId = team.team_id;
    expect(await topicHub(env, teamId, sid, tid).storageCounts()).toMatchObject({ events: 20, last_seq: 25 });

    for (const [lastId, reason] of [["1", "expired"], ["99", "ahead"], ["abc", "invalid"]] as const) {
      const sse = await openTopic(team.api_key, sid, tid, { "Last-Event-ID": lastId });
      await sse.next();
      const reset = await sse.nextEvent();
      expect(reset.event).toBe("reset");
      expect(JSON.parse(reset.data)).toMatchObject({ reason, current: 25 });
      const snap = await sse.nextEvent();
      expect(snap).toMatchObject({ event: "snapshot", id: "25" });
      await sse.close();
    }
    // Bytes no header can carry (NUL, CR LF) are an invalid id too, on every kind of stream, not a 500.
    for (const path of [`/v1/sessions/${sid}/topics/${tid}/stream`, `/v1/sessions/${sid}/stream`, `/alpha/discovery/${sid}/${tid}/stream`, "/v1/stream"]) {
      for (const raw of ["%00", "1%0D%0Aevil:%201"]) {
        const res = await call(`${path}?last_event_id=${raw}`, { key: team.api_key });
        expect(res.status, `${path} ${raw}`).toBe(200);
        const sse = new SseReader(res);
        await sse.next();
        const reset = await sse.nextEvent();
        expect(reset.event).toBe("reset");
        expect(JSON.parse(reset.data)).toMatchObject({ reason: "invalid", last_event_id: null });
        await sse.close();
      }
    }
    // The oldest kept event is 6, so an id of 5 can still be served without a gap.
    const sse = await openTopic(team.api_key, sid, tid, { "Last-Event-ID": "5" });
    await sse.next();
    expect((await sse.nextEvent()).id).toBe("6");
    await sse.close();
  });
});

describe("subscribers", () => {
  it("a closed connection leaves the hub's subscriber set", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const teamId = team.team_id;
    const hub = topicHub(env, teamId, sid, tid);
    const a = await openTopic(team.api_key, sid, tid);
    const b = await openTopic(team.api_key, sid, tid);
    await a.next();
    await b.next();
    expect(await hub.subscriberCount()).toBe(2);
    await a.close();
    // The next write (a heartbeat, every 300 ms in tests) fails for the closed one and drops it.
    await eventually(() => hub.subscriberCount(), (n) => n === 1);
    await b.close();
    await eventually(() => hub.subscriberCount(), (n) => n === 0);
  });

  it("the session stream carries session-level events and the topic stream the topic's", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const sessionRes = await call(`/v1/sessions/${sid}/stream`, { key: team.api_key });
    const sessionSse = new SseReader(sessionRes);
    const topicSse = await openTopic(team.api_key, sid, tid);
    await sessionSse.next();
    const snap = await sessionSse.nextEvent();
    expect(snap.event).toBe("snapshot");
    expect(snap.id).toBe("1"); // the topic_added announced when the topic was created
    // The session, and its topics as the index lists them: a watcher starts knowing every topic.
    expect(JSON.parse(snap.data)).toMatchObject({ id: sid, status: "created", topics: [{ id: tid, status: "created", current_step: null }], topics_total: 1 });
    await topicSse.next();
    await topicSse.nextEvent();

    await (await postEvents(team.api_key, [
      { id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } },
      stepEvent(sid, tid, "step_started", { step: "design" }),
    ])).json();
    const s = await sessionSse.nextEvent();
    const t = await topicSse.nextEvent();
    expect(s.event).toBe("update_status");
    expect(t.event).toBe("step_started");
    // Nothing else arrives on either: only heartbeats.
    expect((await sessionSse.next(1500)).comment).toBe("heartbeat");
    expect((await topicSse.next(1500)).comment).toBe("heartbeat");
    await sessionSse.close();
    await topicSse.close();
  });

  it("serves the seed system's stream paths as aliases", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    for (const path of [`/alpha/discovery/${sid}/stream`, `/api/alpha/sessions/${sid}/stream`, `/alpha/discovery/${sid}/${tid}/stream`]) {
      const res = await call(path, { key: team.api_key });
      expect(res.status, path).toBe(200);
      const sse = new SseReader(res);
      await sse.next();
      const snap = await sse.nextEvent();
      expect(snap.event).toBe("snapshot");
      expect(JSON.parse(snap.data).id).toBe(path.endsWith(`${tid}/stream`) ? tid : sid);
      await sse.close();
    }
  });

  it("a missing topic or session stream is 404", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    for (const path of [`/v1/sessions/${sid}/topics/nope/stream`, `/v1/sessions/nope/stream`]) {
      const res = await call(path, { key: team.api_key });
      expect(res.status).toBe(404);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      await res.json();
    }
  });
});

describe("exactly once", () => {
  it("an event re-sent in the same or another request is applied and streamed once", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const sse = await openTopic(team.api_key, sid, tid);
    await sse.next();
    await sse.nextEvent();
    const e = stepEvent(sid, tid, "usage.reported", { step: "design", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }] });
    await (await postEvents(team.api_key, [e, e])).json();
    await (await postEvents(team.api_key, [e])).json();
    const marker = stepEvent(sid, tid, "step_started", { step: "prep" });
    await (await postEvents(team.api_key, [marker])).json();
    const first = await sse.nextEvent();
    const second = await sse.nextEvent();
    expect([first.id, JSON.parse(first.data).id]).toEqual(["1", e.id]);
    expect([second.id, JSON.parse(second.data).id]).toEqual(["2", marker.id]);
    await sse.close();
    const topic = await json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key: team.api_key }));
    expect(topic.steps.design.tools).toEqual([{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }]);
  });

  it("an event that breaks a state machine is recorded on the session and broadcast as nothing", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const sessionSse = new SseReader(await call(`/v1/sessions/${sid}/stream`, { key: team.api_key }));
    await sessionSse.next();
    await sessionSse.nextEvent();
    const done = { id: uid("e"), type: "update_status", session_id: sid, data: { status: "completed" } };
    const again = { id: uid("bad"), type: "update_status", session_id: sid, data: { status: "running" } };
    const badStep = stepEvent(sid, tid, "step_started", { step: "deploy" });
    await (await postEvents(team.api_key, [done, again, badStep])).json();
    const s = await eventually(() => summary(team.api_key, sid), (x) => x.rejected_events.length === 2);
    expect(s.status).toBe("completed");
    expect(s.rejected_events).toEqual([
      { event_id: again.id, type: "update_status", reason: expect.stringContaining("completed") },
      { event_id: badStep.id, type: "step_started", reason: expect.stringContaining("unknown step") },
    ]);
    expect((await sessionSse.nextEvent()).event).toBe("update_status");
    expect((await sessionSse.next(1500)).comment).toBe("heartbeat");
    await sessionSse.close();
    const counts = await sessionHub(env, team.team_id, sid).storageCounts();
    expect(counts.last_seq).toBe(2); // topic_added and the completion; the refused event is not logged
  });

  it("a status report that changes nothing (late history, a repeat) is accepted but neither logged nor broadcast", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    const status = (id: string, minute: number, data: Record<string, unknown>) => ({ id: uid(id), type: "update_status", session_id: sid, occurred_at: `2026-12-01T10:${String(minute).padStart(2, "0")}:00Z`, data });
    const running = status("run", 10, { status: "running" });
    const completed = status("done", 12, { status: "completed" });
    // One request each, in this arrival order: a running that occurred before the end, then the end again.
    for (const e of [running, completed, status("late", 9, { status: "running" }), status("again", 13, { status: "completed", reason: "again" })]) {
      expect((await postEvents(team.api_key, [e])).status).toBe(202);
    }
    await eventually(() => sessionHub(env, team.team_id, sid).storageCounts(), (c) => c.applied >= 5);
    const s = await summary(team.api_key, sid);
    expect(s).toMatchObject({ status: "completed", rejected_events: [] });
    expect(s.status_reason ?? null).toBeNull(); // the repeat's reason was not taken
    const sse = new SseReader(await call(`/v1/sessions/${sid}/stream?last_event_id=0`, { key: team.api_key }));
    await sse.next();
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) seen.push(JSON.parse((await sse.nextEvent()).data).id);
    expect(seen.slice(1)).toEqual([running.id, completed.id]);
    expect((await sse.next(1500)).comment).toBe("heartbeat");
    await sse.close();
    // The same holds for an operator's repeat: PATCH running on a running session is no news either.
    const other = await sessionWithTopic(team.api_key);
    await (await postEvents(team.api_key, [{ id: uid("go"), type: "update_status", session_id: other.sid, data: { status: "running" } }])).json();
    const before = await eventually(() => sessionHub(env, team.team_id, other.sid).storageCounts(), (c) => c.last_seq === 2);
    const patched = await call(`/v1/sessions/${other.sid}`, { method: "PATCH", key: team.api_key, json: { status: "running" } });
    expect(patched.status).toBe(200);
    await patched.json();
    expect((await sessionHub(env, team.team_id, other.sid).storageCounts()).last_seq).toBe(before.last_seq);
  });

  it("late topic history that changes nothing shown is accepted but neither logged nor broadcast; a late start says the step's status", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const at = (minute: number) => `2026-12-01T10:${String(minute).padStart(2, "0")}:00.000Z`;
    const topicEvent = (type: string, minute: number, data: Record<string, unknown>) => ({ ...stepEvent(sid, tid, type, data), occurred_at: at(minute) });
    const completed = topicEvent("step_completed", 5, { step: "design", turns: 3 });
    const passed = topicEvent("alpha.evaluated", 6, { alpha_id: "a1", metrics: { sharpe: 2.1 }, passed: true });
    const lateStart = topicEvent("step_started", 0, { step: "design" });
    const staleVerdict = topicEvent("alpha.evaluated", 1, { alpha_id: "a1", metrics: { sharpe: -0.5 }, passed: false });
    const laterStart = topicEvent("step_started", 10, { step: "design" });
    // One request at a time, in this arrival order.
    for (const [batch, applied] of [[[completed, passed], 2], [[lateStart, staleVerdict], 4], [[laterStart], 5]] as const) {
      expect((await postEvents(team.api_key, [...batch])).status).toBe(202);
      await eventually(() => topicHub(env, team.team_id, sid, tid).storageCounts(), (c) => c.applied >= applied);
    }
    const topic = await json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key: team.api_key }));
    expect(topic.steps.design).toMatchObject({ status: "completed", started_at: at(10), ended_at: at(5) });
    expect(topic.alphas).toEqual([expect.objectContaining({ id: "a1", passed: true, metrics: { sharpe: 2.1 } })]);
    const sse = await openTopic(team.api_key, sid, tid, {}, "?last_event_id=0");
    await sse.next();
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push(JSON.parse((await sse.nextEvent()).data));
    expect(seen.map((e) => e.id)).toEqual([completed.id, passed.id, lateStart.id, laterStart.id]);
    // The starts came after the ending: a watcher reading step_status is not told the step runs.
    expect(seen.filter((e) => e.type === "step_started").map((e) => e.step_status)).toEqual(["completed", "completed"]);
    // Nothing else was logged: the next event on the stream is the next one posted.
    const marker = topicEvent("step_started", 11, { step: "explore" });
    await (await postEvents(team.api_key, [marker])).json();
    const next = await sse.nextEvent();
    expect(JSON.parse(next.data)).toMatchObject({ id: marker.id, step_status: "running" });
    await sse.close();
  });

  it("a first event that changes nothing shown still creates its topic", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    await (await postEvents(team.api_key, [stepEvent(sid, "t3", "usage.reported", { step: "explore", tools: [] })])).json();
    const s = await eventually(() => summary(team.api_key, sid), (x) => x.topics_total === 2);
    expect(s.topics.map((t: any) => t.id)).toEqual(["t1", "t3"]);
    expect((await topicHub(env, team.team_id, sid, "t3").storageCounts()).last_seq).toBe(1);
  });

  it("a refused event for a topic that does not exist creates nothing; a later accepted one creates it", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    const bogus = stepEvent(sid, "tnew", "step_started", { step: "bogus" });
    await (await postEvents(team.api_key, [bogus])).json();
    const s = await eventually(() => summary(team.api_key, sid), (x) => x.rejected_events.length === 1);
    expect(s.rejected_events).toEqual([{ event_id: bogus.id, type: "step_started", reason: expect.stringContaining("unknown step") }]);
    expect(s.topics.map((t: any) => t.id)).toEqual(["t1"]);
    expect(s.topics_total).toBe(1);
    await expectProblem(await call(`/v1/sessions/${sid}/topics/tnew`, { key: team.api_key }), 404);
    // Sent again, it is a duplicate (not refused and recorded twice); a good event creates the topic.
    await (await postEvents(team.api_key, [bogus, stepEvent(sid, "tnew", "step_started", { step: "design" })])).json();
    const after = await eventually(() => summary(team.api_key, sid), (x) => x.topics_total === 2);
    expect(after.rejected_events).toHaveLength(1);
    expect(after.topics.find((t: any) => t.id === "tnew")).toMatchObject({ status: "running", current_step: "design" });
  });

  it("creates a topic from its first event when steps arrive before topic_added", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    await (await postEvents(team.api_key, [stepEvent(sid, "t9", "step_started", { step: "explore" })])).json();
    await (await postEvents(team.api_key, [{ id: uid("e"), type: "topic_added", session_id: sid, data: { topic_id: "t9", hypothesis: "late" } }])).json();
    const s = await eventually(() => summary(team.api_key, sid), (x) => x.topics.some((t: any) => t.id === "t9" && t.hypothesis === "late"));
    expect(s.topics.find((t: any) => t.id === "t9")).toMatchObject({ status: "running", current_step: "explore" });
  });

  it("announces a topic created by its first event on the session stream, once, as the API announces one", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    const sse = new SseReader(await call(`/v1/sessions/${sid}/stream`, { key: team.api_key }));
    await sse.next();
    await sse.nextEvent(); // snapshot
    await (await postEvents(team.api_key, [stepEvent(sid, "t7", "step_started", { step: "explore" })])).json();
    const announced = await sse.nextEvent();
    expect(announced.event).toBe("topic_added");
    expect(JSON.parse(announced.data)).toMatchObject({ id: "api:topic_added:t7", session_id: sid, data: { topic_id: "t7" } });
    // Later events of the topic announce nothing more.
    await (await postEvents(team.api_key, [stepEvent(sid, "t7", "step_completed", { step: "explore", turns: 3 })])).json();
    await eventually(() => topicHub(env, team.team_id, sid, "t7").storageCounts(), (c) => c.last_seq === 2);
    expect((await sse.next(1500)).comment).toBe("heartbeat");
    await sse.close();
  });
});
