import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sweepSentinels } from "../src/cron/sentinels";
import { type AgentEvent, stampAccepted } from "../src/domain/events";
import { applySessionEvent, newSession, type SessionState } from "../src/domain/session";
import { applyTopicEvent, newTopic, type TopicState } from "../src/domain/topic";
import { UPLOADED_META, retryDelayMs, sentinelKey } from "../src/domain/sentinel";
import { call, createTeam, postEvents, sessionWithTopic, SseReader, uid } from "./helpers";

/** Every event the topic's hub logged, read by replay from the start of its stream. */
async function loggedEvents(key: string, sid: string, tid: string, count: number): Promise<Array<Record<string, any>>> {
  const reader = new SseReader(await call(`/v1/sessions/${sid}/topics/${tid}/stream?last_event_id=0`, { key }));
  try {
    const out: Array<Record<string, any>> = [];
    while (out.length < count) {
      const m = await reader.nextEvent();
      if (m.event !== "snapshot") out.push(JSON.parse(m.data));
    }
    return out;
  } finally {
    await reader.close();
  }
}

const step = (sid: string, tid: string, type: string, data: Record<string, unknown>, occurred_at?: string) => ({
  id: uid("e"),
  type,
  session_id: sid,
  topic_id: tid,
  ...(occurred_at ? { occurred_at } : {}),
  data,
});

describe("accepted_at: when the platform accepted an event, its time when it gives no occurred_at", () => {
  it("is the time POST /v1/callbacks accepted the request, shared by its events", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const given = "2026-11-30T08:00:00.000Z";
    const before = Date.now();
    const res = await postEvents(team.api_key, [step(sid, tid, "step_started", { step: "design" }), step(sid, tid, "step_completed", { step: "design", turns: 3 }), step(sid, tid, "step_started", { step: "prep" }, given)]);
    const after = Date.now();
    expect(res.status).toBe(202);
    await res.json();
    const [a, b, c] = await loggedEvents(team.api_key, sid, tid, 3);
    expect(a?.accepted_at).toBeDefined();
    expect(Date.parse(a?.accepted_at)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(a?.accepted_at)).toBeLessThanOrEqual(after);
    expect(b?.accepted_at).toBe(a?.accepted_at);
    expect(c?.accepted_at).toBe(a?.accepted_at);
    // What the sender said stays as it said it; nothing is made up for what it did not say.
    expect(a?.occurred_at).toBeUndefined();
    expect(c?.occurred_at).toBe(given);
  });

  it("cannot be set by a client", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const before = Date.now();
    await (await postEvents(team.api_key, [{ ...step(sid, tid, "step_started", { step: "design" }), accepted_at: "2020-01-01T00:00:00.000Z" }])).json();
    const [logged] = await loggedEvents(team.api_key, sid, tid, 1);
    expect(Date.parse(logged?.accepted_at)).toBeGreaterThanOrEqual(before);
  });

  it("is a sentinel's upload time when swept, not the sweep's", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const event = step(sid, tid, "step_started", { step: "explore" });
    const key = sentinelKey({ team_id: team.team_id, session_id: sid, topic_id: tid, event_id: event.id });
    await env.BUCKET.put(key, JSON.stringify(event));
    const uploaded = (await env.BUCKET.head(key))?.uploaded.toISOString();
    // A sweep a little later: the event must not take the sweep's time.
    await new Promise((r) => setTimeout(r, 20));
    await sweepSentinels(env);
    const [logged] = await loggedEvents(team.api_key, sid, tid, 1);
    expect(logged?.id).toBe(event.id);
    expect(logged?.accepted_at).toBe(uploaded);
  });

  it("is a sentinel's first upload time even when failed sweeps rewrote it since (which moves R2's upload time)", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const event = step(sid, tid, "step_started", { step: "explore" });
    const key = sentinelKey({ team_id: team.team_id, session_id: sid, topic_id: tid, event_id: event.id });
    await env.BUCKET.put(key, JSON.stringify(event));
    const uploaded = (await env.BUCKET.head(key))?.uploaded.toISOString();
    // A stored secret that does not decrypt: each sweep fails on it and rewrites it to count the try.
    await env.DB.prepare("UPDATE teams SET signing_secret = ? WHERE id = ?").bind("v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAA", team.team_id).run();
    let now = Date.parse("2030-01-01T00:00:00Z");
    for (let attempt = 1; attempt <= 2; attempt++) {
      // A rewrite a little later than what it rewrites, so R2's upload time moves.
      await new Promise((r) => setTimeout(r, 20));
      expect(await sweepSentinels(env, { now })).toMatchObject({ retrying: 1 });
      const rewritten = await env.BUCKET.head(key);
      expect(rewritten?.uploaded.toISOString()).not.toBe(uploaded);
      expect(rewritten?.customMetadata?.[UPLOADED_META]).toBe(uploaded);
      now += retryDelayMs(attempt) + 1000;
    }
    await env.DB.prepare("UPDATE teams SET signing_secret = NULL WHERE id = ?").bind(team.team_id).run();
    expect(await sweepSentinels(env, { now })).toMatchObject({ applied: 1 });
    const [logged] = await loggedEvents(team.api_key, sid, tid, 1);
    expect(logged?.id).toBe(event.id);
    expect(logged?.accepted_at).toBe(uploaded);
  });

  it("is a sentinel's own upload time when what claims to be its first is not an earlier instant", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    for (const [claimed, name] of [
      ["yesterday", "explore"],
      ["2999-01-01T00:00:00.000Z", "design"],
    ] as const) {
      const event = step(sid, tid, "step_started", { step: name });
      const key = sentinelKey({ team_id: team.team_id, session_id: sid, topic_id: tid, event_id: event.id });
      await env.BUCKET.put(key, JSON.stringify(event), { customMetadata: { [UPLOADED_META]: claimed } });
      const uploaded = (await env.BUCKET.head(key))?.uploaded.toISOString();
      expect(await sweepSentinels(env)).toMatchObject({ applied: 1 });
      const logged = (await loggedEvents(team.api_key, sid, tid, claimed === "yesterday" ? 1 : 2)).find((e) => e.id === event.id);
      expect(logged?.accepted_at).toBe(uploaded);
    }
  });

  it("orders events by when they were sent, whatever order the queue delivers them in", () => {
    // A step fails; the agent re-runs it a moment later; neither event says when it occurred.
    const failed: AgentEvent = { id: "z-fail", type: "step_failed", session_id: "s1", topic_id: "t1", data: { step: "explore", error: "boom" } };
    const rerun: AgentEvent = { id: "a-start", type: "step_started", session_id: "s1", topic_id: "t1", data: { step: "explore" } };
    const sent = [...stampAccepted([failed], new Date("2026-12-01T10:00:00.000Z")), ...stampAccepted([rerun], new Date("2026-12-01T10:00:00.250Z"))];
    const run = (events: AgentEvent[]): TopicState => {
      let t = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: "2026-12-01T09:00:00.000Z" });
      events.forEach((e, i) => {
        t = applyTopicEvent(t, e, `2026-12-01T10:05:0${i}.000Z`).state;
      });
      return t;
    };
    // Delivered as sent, and the other way round: the re-run stands both ways.
    expect(run(sent).steps.explore.status).toBe("running");
    expect(run([...sent].reverse()).steps.explore.status).toBe("running");
    // What the hub did before stamping: the last applied wins, so the order decided.
    expect(run([rerun, failed]).steps.explore.status).toBe("failed");
  });


  it("orders a session's status reports by when they were sent; within one request, in the order given", () => {
    const status = (id: string, value: string): AgentEvent => ({ id, type: "update_status", session_id: "s1", data: { status: value } });
    const run = (events: AgentEvent[]): SessionState => {
      let state = newSession({ id: "s1", team_id: "a", now: "2026-12-01T09:00:00.000Z" });
      events.forEach((e, i) => {
        state = applySessionEvent(state, e, `2026-12-01T10:05:0${i}.000Z`).state;
      });
      return state;
    };
    // Two requests: running, then completed. Delivered the other way round, the late running
    // is history (it was sent before the completion), not a forbidden change.
    const sent = [...stampAccepted([status("r", "running")], new Date("2026-12-01T10:00:00.000Z")), ...stampAccepted([status("c", "completed")], new Date("2026-12-01T10:00:01.000Z"))];
    for (const order of [sent, [...sent].reverse()]) {
      const state = run(order);
      expect(state.status).toBe("completed");
      expect(state.rejected_events).toEqual([]);
    }
    // One request that says completed, then running: running comes after, so it is refused.
    const oneRequest = run(stampAccepted([status("c2", "completed"), status("r2", "running")], new Date("2026-12-01T10:00:00.000Z")));
    expect(oneRequest.status).toBe("completed");
    expect(oneRequest.rejected_events.map((r) => r.event_id)).toEqual(["r2"]);
  });
});
