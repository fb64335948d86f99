import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sessionHub, topicHub } from "../src/lib/hubs";
import { SseReader, call, createSession, createTeam, expectProblem, json, uid } from "./helpers";

/**
 * A create writes its index row first (it claims the id), then calls the hub. When that call
 * fails, the row stays with no hub behind it: the row is written here directly, as such a
 * first try leaves it.
 */
const CLAIMED_AT = "2026-12-01T10:00:00.000Z";

async function orphanSessionRow(team: string, id: string) {
  await env.DB.prepare(`INSERT INTO sessions (team_id, id, status, title, metadata, created_at, updated_at, version) VALUES (?, ?, 'created', NULL, '{}', ?, ?, 0)`).bind(team, id, CLAIMED_AT, CLAIMED_AT).run();
}

async function orphanTopicRow(team: string, sid: string, id: string) {
  await env.DB.prepare(`INSERT INTO topics (team_id, session_id, id, status, current_step, hypothesis, created_at, updated_at, version) VALUES (?, ?, ?, 'created', NULL, NULL, ?, ?, 0)`).bind(team, sid, id, CLAIMED_AT, CLAIMED_AT).run();
}

describe("a create whose hub call failed after its index row was written: the retry completes it", () => {
  it("POST /v1/sessions again answers 201 with the session, GET finds it; once it exists, 409", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await orphanSessionRow(team.team_id, sid);
    await expectProblem(await call(`/v1/sessions/${sid}`, { key: team.api_key }), 404);

    const retry = await call("/v1/sessions", { method: "POST", key: team.api_key, json: { id: sid, title: "second try", metadata: { k: 1 } } });
    expect(retry.status).toBe(201);
    expect(await json(retry)).toMatchObject({ id: sid, title: "second try", metadata: { k: 1 }, created_at: CLAIMED_AT, topics: [] });
    const got = await call(`/v1/sessions/${sid}`, { key: team.api_key });
    expect(got.status).toBe(200);
    expect(await json(got)).toMatchObject({ id: sid, title: "second try", status: "created" });
    const listed = await json(await call("/v1/sessions", { key: team.api_key }));
    expect(listed.items.find((s: any) => s.id === sid)).toMatchObject({ title: "second try", created_at: CLAIMED_AT });

    await expectProblem(await call("/v1/sessions", { method: "POST", key: team.api_key, json: { id: sid } }), 409);
  });

  it("two retries at once: one creates the session, the other is 409", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await orphanSessionRow(team.team_id, sid);
    const answers = await Promise.all([1, 2].map((n) => call("/v1/sessions", { method: "POST", key: team.api_key, json: { id: sid, title: `try ${n}` } })));
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409]);
    for (const a of answers) await a.text();
  });

  it("POST …/topics again answers 201, GET finds the topic, the session lists and announces it; once it exists, 409", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    await orphanTopicRow(team.team_id, sid, "t1");
    await expectProblem(await call(`/v1/sessions/${sid}/topics/t1`, { key: team.api_key }), 404);

    const retry = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1", hypothesis: "h", max_turns: { design: 7 } } });
    expect(retry.status).toBe(201);
    expect(await json(retry)).toMatchObject({ id: "t1", hypothesis: "h", created_at: CLAIMED_AT, steps: { design: { max_turns: 7 } } });
    const got = await call(`/v1/sessions/${sid}/topics/t1`, { key: team.api_key });
    expect(got.status).toBe(200);
    expect(await json(got)).toMatchObject({ id: "t1", hypothesis: "h" });
    const list = await json(await call(`/v1/sessions/${sid}/topics`, { key: team.api_key }));
    expect(list.items).toEqual([expect.objectContaining({ id: "t1", hypothesis: "h", created_at: CLAIMED_AT })]);
    // Announced on the session stream as the first try would have.
    expect((await sessionHub(env, team.team_id, sid).storageCounts()).last_seq).toBe(1);
    const sse = new SseReader(await call(`/v1/sessions/${sid}/stream?last_event_id=0`, { key: team.api_key }));
    await sse.next();
    const announced = await sse.nextEvent();
    expect(announced.event).toBe("topic_added");
    expect(JSON.parse(announced.data)).toMatchObject({ id: "api:topic_added:t1", data: { topic_id: "t1", hypothesis: "h" } });
    await sse.close();

    await expectProblem(await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1" } }), 409);
  });

  it("a topic create that stopped after its hub call (no announcement): the retry is 409, announces it, and changes nothing else", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    await orphanTopicRow(team.team_id, sid, "t1");
    await topicHub(env, team.team_id, sid, "t1").ensure({ id: "t1", session_id: sid, team_id: team.team_id, hypothesis: null, created_at: CLAIMED_AT });
    expect((await sessionHub(env, team.team_id, sid).storageCounts()).last_seq).toBe(0);

    await expectProblem(await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1", hypothesis: "h", max_turns: { design: 7 } } }), 409);
    // Refused: the body's hypothesis did not fill the one the topic lacks, nor its budget apply.
    const topic = await json(await call(`/v1/sessions/${sid}/topics/t1`, { key: team.api_key }));
    expect(topic).toMatchObject({ id: "t1", hypothesis: null, steps: { design: { max_turns: 15 } } });
    // But the topic the first try made is announced, once, as that try would have.
    expect((await sessionHub(env, team.team_id, sid).storageCounts()).last_seq).toBe(1);
    const sse = new SseReader(await call(`/v1/sessions/${sid}/stream?last_event_id=0`, { key: team.api_key }));
    await sse.next();
    const announced = await sse.nextEvent();
    expect(announced.event).toBe("topic_added");
    expect(JSON.parse(announced.data)).toMatchObject({ id: "api:topic_added:t1", data: { topic_id: "t1" } });
    await sse.close();
    await expectProblem(await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1" } }), 409);
    expect((await sessionHub(env, team.team_id, sid).storageCounts()).last_seq).toBe(1);
  });
});
