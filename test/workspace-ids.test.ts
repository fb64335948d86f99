import { describe, expect, it } from "vitest";
import { SseReader, call, createSession, createTeam, json } from "./helpers";

// The file path is what follows `/v1/sessions/:sid/topics/:tid/workspace/`, whatever the ids
// are: a session or topic named `workspace` must not move where the path starts.
async function topicNamed(sid: string, tid: string) {
  const team = await createTeam();
  await createSession(team.api_key, sid);
  const res = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: tid } });
  expect(res.status).toBe(201);
  await res.json();
  return team.api_key;
}

async function put(key: string, url: string, body: string) {
  return call(url, { method: "PUT", key, headers: { "Content-Type": "text/plain", "Content-Length": String(new TextEncoder().encode(body).byteLength) }, body });
}

async function listed(key: string, url: string) {
  return (await json(await call(url, { key }))).items.map((f: any) => f.path);
}

describe("workspace: session and topic ids that read like the route", () => {
  const cases: Array<[string, string]> = [
    ["workspace", "t1"],
    ["s1", "workspace"],
    ["workspace", "workspace"],
  ];
  for (const [sid, tid] of cases) {
    it(`sid=${sid} tid=${tid}: the path is what follows the route, stored, listed and announced as such`, async () => {
      const key = await topicNamed(sid, tid);
      const base = `/v1/sessions/${sid}/topics/${tid}/workspace`;
      const sse = new SseReader(await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key }));
      await sse.next();
      await sse.nextEvent();

      const created = await put(key, `${base}/f.txt`, "one");
      expect(created.status).toBe(201);
      expect((await json(created)).path).toBe("f.txt");
      expect(JSON.parse((await sse.nextEvent()).data).data.files[0].path).toBe("f.txt");
      // A path that itself holds `workspace/` segments keeps them.
      const nested = await put(key, `${base}/workspace/workspace/g.txt`, "two");
      expect((await json(nested)).path).toBe("workspace/workspace/g.txt");
      await sse.nextEvent();

      expect(await listed(key, base)).toEqual(["f.txt", "workspace/workspace/g.txt"]);
      expect(await listed(key, `${base}?prefix=workspace/`)).toEqual(["workspace/workspace/g.txt"]);
      const got = await call(`${base}/f.txt`, { key });
      expect(await got.text()).toBe("one");
      const del = await call(`${base}/workspace/workspace/g.txt`, { method: "DELETE", key });
      expect(del.status).toBe(204);
      expect(JSON.parse((await sse.nextEvent()).data).data.files).toEqual([{ path: "workspace/workspace/g.txt", size: 0, deleted: true }]);
      expect(await listed(key, base)).toEqual(["f.txt"]);
      await sse.close();
    });
  }

  it("percent-encoded ids and route segments reach the same file as plain ones", async () => {
    const key = await topicNamed("workspace", "workspace");
    const created = await put(key, "/v1/sessions/workspace/topics/workspace/workspace/a/f.txt", "plain");
    expect(created.status).toBe(201);
    await created.json();
    // %77 is "w", %2D is "-": the same ids and route, spelt another way.
    for (const url of [
      "/v1/sessions/%77orkspace/topics/workspace/workspace/a/f.txt",
      "/v1/sessions/workspace/topics/%77orkspac%65/workspace/a/f.txt",
      "/v1/sessions/workspace/topics/workspace/%77orkspace/a/f.txt",
      "/v1/sessions/workspace/topics/workspace/workspace/a/%66.txt",
    ]) {
      const got = await call(url, { key });
      expect(got.status, url).toBe(200);
      expect(await got.text(), url).toBe("plain");
    }
    const replaced = await put(key, "/v1/sessions/%77orkspace/topics/%77orkspace/%77orkspace/a/f.txt", "encoded");
    expect(replaced.status).toBe(200);
    expect((await json(replaced)).path).toBe("a/f.txt");
    expect(await listed(key, "/v1/sessions/workspace/topics/workspace/workspace")).toEqual(["a/f.txt"]);
  });
});
