import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SENTINEL_PREFIX } from "../src/domain/sentinel";
import worker from "../src/index";
import type { CallbackMessage } from "../src/queue/messages";
import type { ApiKey } from "../src/routes/keys";
import type { SessionResponse, TopicResponse } from "../src/routes/schemas";
import { call, createSession, createTeam, drain, eventually, expectProblem, json, postEvents, sessionWithTopic, stepEvent, summary, uid } from "./helpers";

/** Another team must learn nothing: 404 (never 403), and no trace of A's data in the answer. */
const A_TITLE = "A-confidential-title";
const A_HYPOTHESIS = "A-confidential-hypothesis";

const streamPaths = (sid: string, tid: string) => [
  `/v1/sessions/${sid}/stream`,
  `/v1/sessions/${sid}/topics/${tid}/stream`,
  `/alpha/discovery/${sid}/stream`,
  `/alpha/discovery/${sid}/${tid}/stream`,
  `/api/alpha/sessions/${sid}/stream`,
];

const ws = (sid: string, tid: string, path = "") => `/v1/sessions/${sid}/topics/${tid}/workspace${path ? `/${path}` : ""}`;

/** Team A with a running session, a topic with a step and an evaluated alpha, and a workspace file; team B with nothing of A's. */
async function twoTeams() {
  const a = await createTeam("A");
  const b = await createTeam("B");
  const sid = uid("s");
  const tid = "t1";
  await createSession(a.api_key, sid, { title: A_TITLE, metadata: { owner: "team-a" } });
  const topic = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: a.api_key, json: { id: tid, hypothesis: A_HYPOTHESIS } });
  expect(topic.status).toBe(201);
  await topic.json();
  const accepted = await postEvents(a.api_key, [
    { id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } },
    stepEvent(sid, tid, "step_started", { step: "design" }),
    stepEvent(sid, tid, "alpha.registered", { alpha_id: "alpha-a", name: "A-alpha", expression: "rank(x)" }),
    stepEvent(sid, tid, "alpha.evaluated", { alpha_id: "alpha-a", metrics: { sharpe: 2 }, passed: true }),
  ]);
  expect(accepted.status).toBe(202);
  await accepted.json();
  await eventually(() => summary(a.api_key, sid), (s: SessionResponse) => s.status === "running" && s.topics[0]?.alphas[0]?.passed === true);
  const file = new TextEncoder().encode("A's notes");
  const put = await call(ws(sid, tid, "notes.txt"), { method: "PUT", key: a.api_key, headers: { "Content-Type": "text/plain", "Content-Length": String(file.byteLength) }, body: file });
  expect(put.status).toBe(201);
  await put.json();
  return { a, b, sid, tid };
}

/** Everything A can see about its own data, to compare before and after B's attempts. */
async function stateOfA(key: string, sid: string, tid: string) {
  const get = async (path: string) => {
    const res = await call(path, { key });
    expect(res.status, path).toBe(200);
    return json(res);
  };
  const workspaceFile = await call(ws(sid, tid, "notes.txt"), { key });
  expect(workspaceFile.status).toBe(200);
  return {
    session: (await get(`/v1/sessions/${sid}`)) as SessionResponse,
    topic: (await get(`/v1/sessions/${sid}/topics/${tid}`)) as TopicResponse,
    alphas: await get(`/v1/sessions/${sid}/alphas`),
    sessions: await get("/v1/sessions"),
    keys: await get("/v1/keys"),
    workspace: await get(ws(sid, tid)),
    file: await workspaceFile.text(),
  };
}

/** Asserts a 404 problem whose text carries nothing of A's. */
async function expectHidden(res: Response, what: string) {
  const copy = res.clone();
  const text = await copy.text();
  await expectProblem(res, 404);
  for (const secret of [A_TITLE, A_HYPOTHESIS, "A-alpha", "team-a", "A's notes"]) expect(text, what).not.toContain(secret);
}

describe("cross-team: who may not see it", () => {
  it("every read route on A's ids answers B's operator key with 404, never 403 nor A's data", async () => {
    const { a, b, sid, tid } = await twoTeams();
    const before = await stateOfA(a.api_key, sid, tid);
    const paths = [
      `/v1/sessions/${sid}`,
      `/v1/sessions/${sid}/topics`,
      `/v1/sessions/${sid}/topics/${tid}`,
      `/v1/sessions/${sid}/alphas`,
      `/v1/sessions/${sid}/alphas?passed=true`,
      ws(sid, tid),
      ws(sid, tid, "notes.txt"),
      ...streamPaths(sid, tid),
    ];
    for (const path of paths) await expectHidden(await call(path, { key: b.api_key }), path);
    // A replayed Last-Event-ID does not open A's log either.
    await expectHidden(await call(`/v1/sessions/${sid}/topics/${tid}/stream?last_event_id=0`, { key: b.api_key }), "replay");
    await expectHidden(await call(`/v1/sessions/${sid}/stream`, { key: b.api_key, headers: { "Last-Event-ID": "0" } }), "replay header");
    expect(await stateOfA(a.api_key, sid, tid)).toEqual(before);
  });

  it("every write route on A's ids answers B with 404 and applies nothing to A", async () => {
    const { a, b, sid, tid } = await twoTeams();
    const before = await stateOfA(a.api_key, sid, tid);
    const aKeys = (before.keys.items as ApiKey[]).map((k) => k.id);
    expect(aKeys).toHaveLength(1);

    await expectHidden(await call(`/v1/sessions/${sid}`, { method: "PATCH", key: b.api_key, json: { status: "failed", reason: "B was here" } }), "PATCH session");
    await expectHidden(await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: b.api_key, json: { id: "t-from-b", hypothesis: "B" } }), "POST topic");
    // One event naming A's session, a batch mixing levels, and a single (unbatched) event.
    await expectHidden(await postEvents(b.api_key, [{ id: uid("e"), type: "update_status", session_id: sid, data: { status: "failed", reason: "B" } }]), "callback session-level");
    await expectHidden(
      await postEvents(b.api_key, [
        stepEvent(sid, tid, "step_completed", { step: "design", turns: 99 }),
        stepEvent(sid, tid, "alpha.evaluated", { alpha_id: "alpha-a", metrics: { sharpe: -5 }, passed: false }),
        { id: uid("e"), type: "topic_added", session_id: sid, data: { topic_id: "t-from-b" } },
      ]),
      "callback batch",
    );
    await expectHidden(await call("/v1/callbacks", { method: "POST", key: b.api_key, json: stepEvent(sid, tid, "step_failed", { step: "design", error: "B" }) }), "callback single");
    await expectHidden(await call(`/v1/keys/${aKeys[0]}`, { method: "DELETE", key: b.api_key }), "DELETE key");
    const overwrite = new TextEncoder().encode("B's notes");
    await expectHidden(await call(ws(sid, tid, "notes.txt"), { method: "PUT", key: b.api_key, headers: { "Content-Type": "text/plain", "Content-Length": String(overwrite.byteLength) }, body: overwrite }), "PUT file");
    await expectHidden(await call(ws(sid, tid, "notes.txt"), { method: "DELETE", key: b.api_key }), "DELETE file");

    // Callbacks are applied by the queue: A's own later event being visible means anything
    // B had managed to enqueue before it would have been applied by now.
    const marker = await postEvents(a.api_key, [{ id: uid("e"), type: "insight_started", session_id: sid, data: { insight_id: "marker" } }]);
    expect(marker.status).toBe(202);
    await marker.json();
    await eventually(() => summary(a.api_key, sid), (s: SessionResponse) => s.insights.marker !== undefined);

    const after = await stateOfA(a.api_key, sid, tid);
    expect(after.session).toMatchObject({ status: "running", title: A_TITLE, rejected_events: [] });
    expect(after.session.status_reason).toBeUndefined();
    expect(after.session.topics).toEqual(before.session.topics);
    expect(after.topic).toEqual(before.topic);
    expect(after.alphas).toEqual(before.alphas);
    expect(after.keys).toEqual(before.keys);
    expect(after.workspace).toEqual(before.workspace);
    expect(after.file).toBe("A's notes");
    // A's key was not deleted: it still authenticates.
    expect(after.keys.items.map((k: ApiKey) => k.id)).toEqual(aKeys);
    // Nothing leaked into B either.
    expect((await json(await call("/v1/sessions", { key: b.api_key }))).items).toEqual([]);
  });

  it("lists of B never include A's sessions, keys, dead letters, sentinels or storage", async () => {
    const { a, b, sid, tid } = await twoTeams();
    const bSid = uid("s");
    await createSession(b.api_key, bSid);
    // A dead-lettered callback message of A's, kept by the real dead-letter consumer.
    const dead: CallbackMessage = { kind: "callbacks", team_id: a.team_id, request_id: "r-dead-a", events: [] };
    const batch = createMessageBatch("switchboard-callbacks-dlq", [{ id: `msg-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 6, body: dead }]);
    const ctx = createExecutionContext();
    await worker.queue(batch as MessageBatch<unknown>, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toHaveLength(1);
    // A sentinel of A's waiting for the sweep.
    await env.BUCKET.put(`${SENTINEL_PREFIX}${a.team_id}/${sid}/${tid}/e1.json`, "{}");

    const aLists = {
      sessions: await json(await call("/v1/sessions", { key: a.api_key })),
      keys: await json(await call("/v1/keys", { key: a.api_key })),
      deadLetters: await json(await call("/v1/dead-letters", { key: a.api_key })),
      sentinels: await json(await call("/v1/sentinels", { key: a.api_key })),
      usage: await json(await call("/v1/usage", { key: a.api_key })),
    };
    // The seed is real: A sees its own items.
    expect(aLists.sessions.items.map((s: { id: string }) => s.id)).toEqual([sid]);
    expect(aLists.keys.items).toHaveLength(1);
    expect(aLists.deadLetters.items).toHaveLength(1);
    expect(aLists.sentinels).toMatchObject({ pending: 1 });

    const bSessions = await json(await call("/v1/sessions", { key: b.api_key }));
    expect(bSessions.items.map((s: { id: string }) => s.id)).toEqual([bSid]);
    const bKeys = await json(await call("/v1/keys", { key: b.api_key }));
    expect(bKeys.items).toHaveLength(1);
    expect(bKeys.items[0].id).not.toBe(aLists.keys.items[0].id);
    expect(await json(await call("/v1/dead-letters", { key: b.api_key }))).toEqual({ items: [], next_cursor: null });
    expect(await json(await call("/v1/sentinels", { key: b.api_key }))).toMatchObject({ pending: 0, rejected: 0 });
    expect(aLists.usage).toEqual({ workspace: { bytes: 9, objects: 1 } });
    expect(await json(await call("/v1/usage", { key: b.api_key }))).toEqual({ workspace: { bytes: 0, objects: 0 } });
    // A cursor taken from A's list pages nothing of A's for B.
    await createSession(a.api_key, uid("s"));
    const aPage = await json(await call("/v1/sessions?limit=1", { key: a.api_key }));
    expect(aPage.next_cursor).toEqual(expect.any(String));
    const bPage = await json(await call(`/v1/sessions?limit=1&cursor=${aPage.next_cursor}`, { key: b.api_key }));
    expect(bPage.items.map((s: { id: string }) => s.id).filter((id: string) => id !== bSid)).toEqual([]);
  });

  it("a stream token B minted for A's stream path gives 404 on that path", async () => {
    const { a, b, sid, tid } = await twoTeams();
    const before = await stateOfA(a.api_key, sid, tid);
    for (const path of streamPaths(sid, tid)) {
      const minted = await call("/v1/stream-tokens", { method: "POST", key: b.api_key, json: { path } });
      expect(minted.status).toBe(201);
      const { token } = await json<{ token: string }>(minted);
      await expectHidden(await call(`${path}?access_token=${encodeURIComponent(token)}`), path);
    }
    expect(await stateOfA(a.api_key, sid, tid)).toEqual(before);
  });

  it("B's stream token for B's own path works there and nowhere else (401)", async () => {
    const b = await createTeam("B");
    const a = await createTeam("A");
    const { sid, tid } = await sessionWithTopic(b.api_key);
    const aOwn = await sessionWithTopic(a.api_key);
    const own = `/v1/sessions/${sid}/stream`;
    const minted = await call("/v1/stream-tokens", { method: "POST", key: b.api_key, json: { path: own } });
    expect(minted.status).toBe(201);
    const token = encodeURIComponent((await json<{ token: string }>(minted)).token);

    const ok = await call(`${own}?access_token=${token}`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toContain("text/event-stream");
    await drain(ok);

    const elsewhere = [
      `/v1/sessions/${sid}/topics/${tid}/stream`,
      `/alpha/discovery/${sid}/stream`,
      `/api/alpha/sessions/${sid}/stream`,
      `/v1/sessions/${sid}`,
      `/v1/sessions`,
      `/v1/sessions/${aOwn.sid}/stream`,
      `/v1/sessions/${sid}/stream/`,
    ];
    for (const path of elsewhere) await expectProblem(await call(`${path}?access_token=${token}`), 401);
  });

  it("B can create a session with the same id as A's: ids are unique per team", async () => {
    const { a, b, sid, tid } = await twoTeams();
    const before = await stateOfA(a.api_key, sid, tid);

    const created = await call("/v1/sessions", { method: "POST", key: b.api_key, json: { id: sid, title: "B's own" } });
    expect(created.status).toBe(201);
    expect(await json(created)).toMatchObject({ id: sid, title: "B's own", status: "created", topics: [] });
    const topic = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: b.api_key, json: { id: tid, hypothesis: "B's hypothesis" } });
    expect(topic.status).toBe(201);
    expect(await json(topic)).toMatchObject({ id: tid, hypothesis: "B's hypothesis", status: "created", alphas: [] });

    // B's callbacks on the shared id reach B's session only.
    const accepted = await postEvents(b.api_key, [{ id: uid("e"), type: "update_status", session_id: sid, data: { status: "failed", reason: "B ends its own" } }]);
    expect(accepted.status).toBe(202);
    await accepted.json();
    const bSession = await eventually(() => summary(b.api_key, sid), (s: SessionResponse) => s.status === "failed");
    expect(bSession).toMatchObject({ title: "B's own", status_reason: "B ends its own" });
    expect(bSession.topics.map((t: TopicResponse) => t.hypothesis)).toEqual(["B's hypothesis"]);
    expect(await json(await call(`/v1/sessions/${sid}/alphas`, { key: b.api_key }))).toEqual({ items: [], next_cursor: null });

    // B's stream of that id snapshots B's session.
    const stream = await call(`/v1/sessions/${sid}/stream`, { key: b.api_key });
    expect(stream.status).toBe(200);
    const reader = stream.body?.getReader();
    let text = "";
    while (reader && !text.includes("event: snapshot")) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
    }
    await reader?.cancel();
    expect(text).toContain("B's own");
    expect(text).not.toContain(A_TITLE);

    // A's session is untouched.
    const after = await stateOfA(a.api_key, sid, tid);
    expect(after.session).toEqual(before.session);
    expect(after.topic).toEqual(before.topic);
    expect(after.alphas).toEqual(before.alphas);
    expect(after.sessions).toEqual(before.sessions);
    // A taken id is still 409 within a team.
    await expectProblem(await call("/v1/sessions", { method: "POST", key: b.api_key, json: { id: sid } }), 409);
  });
});
