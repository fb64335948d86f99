import { describe, expect, it } from "vitest";
import { SseReader, call, createTeam, json, sessionWithTopic } from "./helpers";

const ws = (sid: string, tid: string, path: string) => `/v1/sessions/${sid}/topics/${tid}/workspace/${path}`;

async function put(key: string, url: string, body: string) {
  return call(url, { method: "PUT", key, headers: { "Content-Type": "text/plain", "Content-Length": String(new TextEncoder().encode(body).byteLength) }, body });
}

/** The next event within `ms` in all: heartbeats (every 300 ms in tests) do not extend the wait. */
async function nextEventWithin(sse: SseReader, ms = 5000) {
  const until = Date.now() + ms;
  for (;;) {
    const left = until - Date.now();
    if (left <= 0) throw new Error(`no event within ${ms} ms`);
    const m = await sse.next(left);
    if (m.event !== undefined || m.data !== "") return m;
  }
}

describe("workspace: DELETE is a write, announced on the topic stream", () => {
  it("a DELETE is followed by workspace.sync naming the file as deleted; a refused one announces nothing", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const sse = new SseReader(await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: team.api_key }));
    await sse.next();
    await nextEventWithin(sse);

    const created = await put(team.api_key, ws(sid, tid, "logs/a.txt"), "abc");
    const etag = (await json(created)).etag;
    const putSync = await nextEventWithin(sse);
    expect(JSON.parse(putSync.data).data.files).toEqual([{ path: "logs/a.txt", size: 3, etag }]);

    const del = await call(ws(sid, tid, "logs/a.txt"), { method: "DELETE", key: team.api_key });
    expect(del.status).toBe(204);
    const delSync = await nextEventWithin(sse);
    expect(delSync.event).toBe("workspace.sync");
    const event = JSON.parse(delSync.data);
    expect(event).toMatchObject({ type: "workspace.sync", session_id: sid, topic_id: tid });
    expect(event.data.files).toEqual([{ path: "logs/a.txt", size: 0, deleted: true }]);
    // A numbered stream event like any other: applied by the topic hub, so it replays by Last-Event-ID.
    expect(Number(delSync.id)).toBeGreaterThan(Number(putSync.id));

    // Nothing to delete (404) or a path refused (400): no event. The next one on the
    // stream is the write after them.
    const missing = await call(ws(sid, tid, "logs/a.txt"), { method: "DELETE", key: team.api_key });
    expect(missing.status).toBe(404);
    await missing.json();
    const refused = await call(ws(sid, tid, "a%2F..%2Fb"), { method: "DELETE", key: team.api_key });
    expect(refused.status).toBe(400);
    await refused.json();
    await (await put(team.api_key, ws(sid, tid, "after.txt"), "z")).json();
    expect(JSON.parse((await nextEventWithin(sse)).data).data.files.map((f: any) => f.path)).toEqual(["after.txt"]);
    await sse.close();
  });
});
