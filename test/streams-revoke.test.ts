import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, createTeam, expectEnd, expectProblem, json, postEvents, sessionWithTopic, SseReader, stepEvent } from "./helpers";

// A stream is authorised when it opens; deleting its key afterwards must end it too, or a
// leaked key would go on receiving events for as long as its connection lasts. Streams here
// ask every 200 ms (STREAM_KEY_CHECK_MS in vitest.config.ts; 60 s deployed).

type CreatedKey = { id: string; key: string };
const newKey = async (operator: string, name: string) => json<CreatedKey>(await call("/v1/keys", { method: "POST", key: operator, json: { name, scopes: ["read"] } }));

describe("streams: a deleted key's streams end", () => {
  it("ends the deleted key's topic and team streams, cleanly; another key's stream goes on; the reconnect is 401", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const leaked = await newKey(team.api_key, "leaked");
    const kept = await newKey(team.api_key, "kept");
    const topicPath = `/v1/sessions/${sid}/topics/${tid}/stream`;
    const leakedTopic = await call(topicPath, { key: leaked.key });
    const leakedTeam = await call("/v1/stream", { key: leaked.key });
    const keptTopic = new SseReader(await call(topicPath, { key: kept.key }));
    expect([leakedTopic.status, leakedTeam.status]).toEqual([200, 200]);
    expect((await keptTopic.nextEvent()).event).toBe("snapshot");

    expect((await call(`/v1/keys/${leaked.id}`, { method: "DELETE", key: team.api_key })).status).toBe(204);
    const [topicText, teamText] = await Promise.all([expectEnd(leakedTopic), expectEnd(leakedTeam)]);
    // It had its snapshot; it ended as a stream ends, and nothing came after.
    expect(topicText).toContain("event: snapshot");
    expect(teamText).toContain("event: snapshot");

    // The other key's stream outlives several checks and still gets what happens next.
    await new Promise((r) => setTimeout(r, 600));
    expect((await postEvents(team.api_key, [stepEvent(sid, tid, "step_started", { step: "design" })])).status).toBe(202);
    expect((await keptTopic.nextEvent()).event).toBe("step_started");
    await keptTopic.close();
    await expectProblem(await call(topicPath, { key: leaked.key }), 401);
  });

  it("ends a stream opened with a stream token when the key that minted it is deleted", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    const viewer = await newKey(team.api_key, "viewer");
    const path = `/v1/sessions/${sid}/stream`;
    const { token } = await json<{ token: string }>(await call("/v1/stream-tokens", { method: "POST", key: viewer.key, json: { path } }));
    const stream = await call(`${path}?access_token=${encodeURIComponent(token)}`);
    expect(stream.status).toBe(200);
    expect((await call(`/v1/keys/${viewer.id}`, { method: "DELETE", key: team.api_key })).status).toBe(204);
    expect(await expectEnd(stream)).toContain("event: snapshot");
  });

  it("asks D1, not this isolate's key cache: a key deleted by another isolate ends the stream at the next check", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const viewer = await newKey(team.api_key, "viewer");
    const stream = await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: viewer.key });
    expect(stream.status).toBe(200);
    // As another isolate's DELETE does it: the row goes, this isolate's cache is not told.
    await env.DB.prepare("DELETE FROM api_keys WHERE id = ?").bind(viewer.id).run();
    // Well inside the cache's 30 s.
    expect(await expectEnd(stream, 5000)).toContain("event: snapshot");
  });
});

