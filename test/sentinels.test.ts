import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sweepSentinels } from "../src/cron/sentinels";
import { SentinelKeyError, parseSentinelKey, sentinelKey } from "../src/domain/sentinel";
import worker from "../src/index";
import { topicHub } from "../src/lib/hubs";
import { signPayload } from "../src/lib/standard-webhooks";
import { call, createTeam, eventually, json, postEvents, sessionWithTopic, stepEvent, summary } from "./helpers";

async function writeSentinel(team: string, event: ReturnType<typeof stepEvent> | { id: string; type: string; session_id: string; topic_id?: string; data: unknown }, meta: Record<string, string> = {}, raw?: string) {
  const key = sentinelKey({ team_id: team, session_id: event.session_id, topic_id: event.topic_id ?? null, event_id: event.id });
  await env.BUCKET.put(key, raw ?? JSON.stringify(event), { customMetadata: meta });
  return key;
}

describe("sentinel keys", () => {
  it("round-trip, with - for a session-level event, ids written as they are", () => {
    const k = { team_id: "team_1", session_id: "s1", topic_id: null, event_id: "e.1_x-Y" };
    expect(sentinelKey(k)).toBe("callback-sentinels/alpha/team_1/s1/-/e.1_x-Y.json");
    expect(parseSentinelKey(sentinelKey(k))).toEqual({ ok: true, key: k });
    const t = { ...k, topic_id: "t.2" };
    expect(parseSentinelKey(sentinelKey(t))).toEqual({ ok: true, key: t });
    expect(parseSentinelKey("callback-sentinels/alpha/team_1/s1/e1.json")).toMatchObject({ ok: false, reason: expect.stringContaining("the key is not") });
  });

  it("write any event id the callback schema takes: an id as is, anything else as ~ + base64url, each one way only", () => {
    const base = { team_id: "team_1", session_id: "s1", topic_id: "t1" };
    // The runner's own ids grow with the topic id: past 128 characters they are no route id.
    for (const event_id of ["e/1", "e%2F1", "a b", "..", "-", "é", "operator:9", "x".repeat(129), `run-1a2b3c4d-${"t".repeat(100)}-explore-step_started`, "y".repeat(200)]) {
      const key = sentinelKey({ ...base, event_id });
      expect(key).toMatch(/^callback-sentinels\/alpha\/team_1\/s1\/t1\/~[A-Za-z0-9_-]+\.json$/);
      expect(parseSentinelKey(key)).toEqual({ ok: true, key: { ...base, event_id } });
    }
    expect(sentinelKey({ ...base, event_id: "e.1" })).toBe("callback-sentinels/alpha/team_1/s1/t1/e.1.json");
    // One key per event: an id written as is does not parse when encoded, nor does junk.
    expect(parseSentinelKey(`callback-sentinels/alpha/team_1/s1/t1/~${btoa("e1").replace(/=+$/, "")}.json`)).toMatchObject({ ok: false, reason: expect.stringContaining("written as is") });
    expect(parseSentinelKey("callback-sentinels/alpha/team_1/s1/t1/~!!.json")).toMatchObject({ ok: false, reason: expect.stringContaining("not base64url") });
    expect(parseSentinelKey(`callback-sentinels/alpha/team_1/s1/t1/~${btoa("z".repeat(201)).replace(/=+$/, "")}.json`)).toMatchObject({ ok: false });
    expect(() => sentinelKey({ ...base, event_id: "" })).toThrow(SentinelKeyError);
    expect(() => sentinelKey({ ...base, event_id: "z".repeat(201) })).toThrow(SentinelKeyError);
  });

  it("refuse a key past R2's 1,024 bytes, naming its length, before anything is uploaded", () => {
    const k = { team_id: "team_1", session_id: "s".repeat(128), topic_id: "t".repeat(128), event_id: "€".repeat(200) };
    expect(() => sentinelKey(k)).toThrow(SentinelKeyError);
    expect(() => sentinelKey(k)).toThrow(/its key would be \d{4} bytes, over R2's 1024/);
    // The same event under short ids fits.
    expect(new TextEncoder().encode(sentinelKey({ ...k, session_id: "s1", topic_id: "t1" })).byteLength).toBeLessThanOrEqual(1024);
  });

  it("refuse team, session and topic ids outside the route id rule, naming the segment", () => {
    const base = { team_id: "team_1", session_id: "s1", topic_id: "t1", event_id: "e1" };
    for (const [field, bad] of [
      ["session_id", "s:1"],
      ["topic_id", "-"],
      ["team_id", "../x"],
    ] as const) {
      expect(() => sentinelKey({ ...base, [field]: bad }), `${field}=${bad}`).toThrow(SentinelKeyError);
      expect(() => sentinelKey({ ...base, [field]: bad })).toThrow(`${field.replace("_id", " id")} ${JSON.stringify(bad)} is not an id`);
    }
    // What an older client wrote for "e/1" (percent-encoded) is not an id: refused, not decoded.
    const parsed = parseSentinelKey("callback-sentinels/alpha/team_1/s1/t1/e%2F1.json");
    expect(parsed).toEqual({ ok: false, reason: expect.stringContaining('the event id "e%2F1" is not an id') });
    expect(parseSentinelKey("callback-sentinels/alpha/team_1/s 1/t1/e1.json")).toEqual({ ok: false, reason: expect.stringContaining('the session id "s 1" is not an id') });
    expect(parseSentinelKey("callback-sentinels/alpha/team_1/s1/../e1.json")).toEqual({ ok: false, reason: expect.stringContaining('the topic id ".." is not an id') });
    expect(parseSentinelKey("callback-sentinels/alpha/team_1/s1/t1/x/e1.json")).toMatchObject({ ok: false });
    expect(parseSentinelKey("callback-sentinels/alpha/team_1/s1//e1.json")).toMatchObject({ ok: false });
  });
});

describe("sentinel sweep", () => {
  it("applies sentinels through the callback path, once even when the event also came over HTTPS, and deletes them", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const both = stepEvent(sid, tid, "step_started", { step: "design" });
    await (await postEvents(team.api_key, [both])).json();
    await eventually(() => topicHub(env, team.team_id, sid, tid).storageCounts(), (c) => c.last_seq === 1);
    await writeSentinel(team.team_id, both);
    const only = stepEvent(sid, tid, "step_completed", { step: "design", turns: 4 });
    await writeSentinel(team.team_id, only);
    // An event id no route id rule allows (the runner's grow past 128 characters): encoded in the key.
    const long = { ...stepEvent(sid, tid, "step_started", { step: "prep" }), id: `run-1a2b3c4d-${"t".repeat(120)}:prep:step_started` };
    expect(await writeSentinel(team.team_id, long)).toContain("/~");
    const sessionLevel = { id: "sess-1", type: "update_status", session_id: sid, data: { status: "running" } };
    await writeSentinel(team.team_id, sessionLevel);

    expect(await json(await call("/v1/sentinels", { key: team.api_key }))).toEqual({ pending: 4, retrying: 0, rejected: 0, truncated: false });
    // The cron handler runs the sweep.
    await worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, createExecutionContext());
    expect(await json(await call("/v1/sentinels", { key: team.api_key }))).toEqual({ pending: 0, retrying: 0, rejected: 0, truncated: false });
    expect((await topicHub(env, team.team_id, sid, tid).storageCounts()).last_seq).toBe(3);
    const s = await summary(team.api_key, sid);
    expect(s.status).toBe("running");
    expect(s.topics[0].steps.design).toMatchObject({ status: "completed", turns: 4 });
    expect(s.topics[0].steps.prep).toMatchObject({ status: "running" });
  });

  it("two sweeps at once apply nothing twice", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    for (let i = 0; i < 10; i++) await writeSentinel(team.team_id, stepEvent(sid, tid, "usage.reported", { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }] }));
    const [a, b] = await Promise.all([sweepSentinels(env), sweepSentinels(env)]);
    expect(a.applied + b.applied).toBeGreaterThanOrEqual(10);
    const topic = await json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key: team.api_key }));
    expect(topic.steps.explore.tools).toEqual([{ name: "bash", calls: 10, duration_ms: 10, errors: 0 }]);
    expect((await env.BUCKET.list({ prefix: `callback-sentinels/alpha/${team.team_id}/` })).objects).toEqual([]);
  });

  it("moves malformed, mismatched, unknown-session and badly signed sentinels to rejected/ with the reason", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const secret = `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: secret } })).json();

    const good = stepEvent(sid, tid, "step_started", { step: "prep" });
    const raw = JSON.stringify(good);
    // Signed long ago: sentinels have no time window.
    const ts = Math.floor(Date.now() / 1000) - 86_400;
    await writeSentinel(team.team_id, good, { "webhook-id": "w1", "webhook-timestamp": String(ts), "webhook-signature": await signPayload(secret, "w1", ts, raw) }, raw);
    const unsigned = await writeSentinel(team.team_id, stepEvent(sid, tid, "step_started", { step: "review" }));
    // Headers present and well formed, but not a signature of this body with this secret.
    const signedEvent = stepEvent(sid, tid, "step_started", { step: "explore" });
    const tamperedRaw = JSON.stringify({ ...signedEvent, data: { step: "explore", max_turns: 999 } });
    const tampered = await writeSentinel(team.team_id, signedEvent, { "webhook-id": "w2", "webhook-timestamp": String(ts), "webhook-signature": await signPayload(secret, "w2", ts, JSON.stringify(signedEvent)) }, tamperedRaw);
    const otherSecret = `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
    const wrongSecretEvent = stepEvent(sid, tid, "step_started", { step: "implement" });
    const wrongSecretRaw = JSON.stringify(wrongSecretEvent);
    const wrongSecret = await writeSentinel(team.team_id, wrongSecretEvent, { "webhook-id": "w3", "webhook-timestamp": String(ts), "webhook-signature": await signPayload(otherSecret, "w3", ts, wrongSecretRaw) }, wrongSecretRaw);
    // A good signature moved to another id or time.
    const movedEvent = stepEvent(sid, tid, "step_started", { step: "evaluate" });
    const movedRaw = JSON.stringify(movedEvent);
    const moved = await writeSentinel(team.team_id, movedEvent, { "webhook-id": "w5", "webhook-timestamp": String(ts + 1), "webhook-signature": await signPayload(secret, "w4", ts, movedRaw) }, movedRaw);
    const notJson = await writeSentinel(team.team_id, stepEvent(sid, tid, "step_started", { step: "x" }), {}, "{not json");
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: null } })).json();
    const mismatched = sentinelKey({ team_id: team.team_id, session_id: sid, topic_id: tid, event_id: "other-id" });
    await env.BUCKET.put(mismatched, JSON.stringify(stepEvent(sid, tid, "step_started", { step: "design" })));
    const unknownSession = await writeSentinel(team.team_id, stepEvent("nope", tid, "step_started", { step: "design" }));
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: secret } })).json();

    const report = await sweepSentinels(env);
    expect(report).toMatchObject({ applied: 1, rejected: 7 });
    expect(await json(await call("/v1/sentinels", { key: team.api_key }))).toEqual({ pending: 0, retrying: 0, rejected: 7, truncated: false });
    const reasons = Object.fromEntries(
      await Promise.all(
        [unsigned, tampered, wrongSecret, moved, notJson, mismatched, unknownSession].map(async (k) => {
          const o = await env.BUCKET.head(k.replace("callback-sentinels/", "callback-sentinels/rejected/"));
          return [k, o?.customMetadata?.reason ?? "(missing)"];
        }),
      ),
    );
    expect(reasons[unsigned]).toBe("signature: missing_headers");
    expect(reasons[tampered]).toBe("signature: bad_signature");
    expect(reasons[wrongSecret]).toBe("signature: bad_signature");
    expect(reasons[moved]).toBe("signature: bad_signature");
    expect(reasons[notJson]).toMatch(/signature|not JSON/);
    expect(reasons[mismatched]).toMatch(/signature|does not match/);
    expect(reasons[unknownSession]).toMatch(/signature|no session/);
    const topic = await json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key: team.api_key }));
    expect(topic.steps.prep.status).toBe("running");
    expect(topic.steps.review.status).toBe("pending");
    for (const step of ["explore", "implement", "evaluate"]) expect(topic.steps[step].status).toBe("pending");
    // A second sweep finds nothing left to retry.
    expect(await sweepSentinels(env)).toMatchObject({ applied: 0, rejected: 0 });
  });

  it("verifies a signed sentinel over its bytes as stored: a body starting with a UTF-8 BOM is applied", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const secret = `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: secret } })).json();
    const event = stepEvent(sid, tid, "step_started", { step: "prep" });
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(JSON.stringify(event))]);
    const ts = Math.floor(Date.now() / 1000);
    const key = sentinelKey({ team_id: team.team_id, session_id: sid, topic_id: tid, event_id: event.id });
    await env.BUCKET.put(key, bytes, { customMetadata: { "webhook-id": "wb", "webhook-timestamp": String(ts), "webhook-signature": await signPayload(secret, "wb", ts, bytes) } });
    expect(await sweepSentinels(env)).toMatchObject({ applied: 1, rejected: 0 });
    const topic = await json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key: team.api_key }));
    expect(topic.steps.prep.status).toBe("running");
  });

  it("without a signing secret, names each structural problem", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const notJson = await writeSentinel(team.team_id, stepEvent(sid, tid, "step_started", { step: "x" }), {}, "{not json");
    const mismatched = sentinelKey({ team_id: team.team_id, session_id: sid, topic_id: tid, event_id: "other-id" });
    await env.BUCKET.put(mismatched, JSON.stringify(stepEvent(sid, tid, "step_started", { step: "design" })));
    const unknownSession = await writeSentinel(team.team_id, stepEvent("nope", tid, "step_started", { step: "design" }));
    const badKey = `callback-sentinels/alpha/${team.team_id}/oops.json`;
    await env.BUCKET.put(badKey, "{}");
    await sweepSentinels(env);
    const reason = async (k: string) => (await env.BUCKET.head(k.replace("callback-sentinels/", "callback-sentinels/rejected/")))?.customMetadata?.reason;
    expect(await reason(notJson)).toContain("not JSON");
    expect(await reason(mismatched)).toContain("does not match");
    expect(await reason(unknownSession)).toContain("no session nope");
    expect(await reason(badKey)).toContain("key is not");
  });
});
