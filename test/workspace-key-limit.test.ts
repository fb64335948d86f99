import { describe, expect, it } from "vitest";
import { call, createTeam, json, sessionWithTopic } from "./helpers";

// R2 caps a whole key at 1,024 bytes, and a workspace file's key is
// `workspace/{team}/{sid}/{tid}/` + path: the path gets what the prefix leaves.
const ws = (sid: string, tid: string, path = "") => `/v1/sessions/${sid}/topics/${tid}/workspace${path ? `/${path}` : ""}`;
const bytes = (s: string) => new TextEncoder().encode(s).byteLength;

async function put(key: string, url: string, body: string) {
  return call(url, { method: "PUT", key, headers: { "Content-Type": "text/plain", "Content-Length": String(bytes(body)) }, body });
}

async function topic() {
  const team = await createTeam();
  const { sid, tid } = await sessionWithTopic(team.api_key);
  const prefix = `workspace/${team.team_id}/${sid}/${tid}/`;
  return { key: team.api_key, sid, tid, limit: 1024 - bytes(prefix) };
}

async function expectLimitProblem(res: Response, limit: number, field = "path") {
  expect(res.status).toBe(400);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  const body = await json(res);
  expect(body.errors[0].path).toBe(field);
  // It names the limit that applies to this topic, not R2's 1,024.
  expect(body.detail).toContain(limit.toLocaleString("en-US"));
}

describe("workspace: a path as long as the R2 key allows", () => {
  it("the longest path this topic's prefix leaves works (201, 200, listed, 204); one byte more is 400 on PUT, GET, DELETE", async () => {
    const t = await topic();
    const longest = `d/${"x".repeat(t.limit - 2)}`;
    expect(bytes(longest)).toBe(t.limit);
    const created = await put(t.key, ws(t.sid, t.tid, longest), "hello");
    expect(created.status).toBe(201);
    expect((await json(created)).path).toBe(longest);
    const got = await call(ws(t.sid, t.tid, longest), { key: t.key });
    expect(got.status).toBe(200);
    expect(await got.text()).toBe("hello");
    const listed = await json(await call(`${ws(t.sid, t.tid)}?prefix=d/`, { key: t.key }));
    expect(listed.items.map((f: any) => f.path)).toEqual([longest]);

    const over = `${longest}y`;
    for (const method of ["PUT", "GET", "DELETE"]) {
      const res = method === "PUT" ? await put(t.key, ws(t.sid, t.tid, over), "x") : await call(ws(t.sid, t.tid, over), { method, key: t.key });
      await expectLimitProblem(res, t.limit);
    }
    const del = await call(ws(t.sid, t.tid, longest), { method: "DELETE", key: t.key });
    expect(del.status).toBe(204);
  });

  it("counts bytes, not characters: a multi-byte path one byte over is 400, at the limit it works", async () => {
    const t = await topic();
    // "é" is 2 bytes in UTF-8.
    const fits = "é".repeat(Math.floor(t.limit / 2)) + (t.limit % 2 ? "a" : "");
    expect(bytes(fits)).toBe(t.limit);
    const ok = await put(t.key, ws(t.sid, t.tid, encodeURIComponent(fits)), "x");
    expect(ok.status).toBe(201);
    await ok.json();
    const over = await put(t.key, ws(t.sid, t.tid, encodeURIComponent(`${fits}é`)), "x");
    await expectLimitProblem(over, t.limit);
  });

  it("a path between 1,000 and 1,024 bytes, and over 1,024, is 400, not 500", async () => {
    const t = await topic();
    for (const n of [1000, 1024, 1025]) {
      await expectLimitProblem(await put(t.key, ws(t.sid, t.tid, "x".repeat(n)), "x"), t.limit);
      await expectLimitProblem(await call(ws(t.sid, t.tid, "x".repeat(n)), { key: t.key }), t.limit);
    }
  });

  it("a list prefix as long as a path works; one byte more is 400 naming the limit (not a cursor problem)", async () => {
    const t = await topic();
    const atLimit = await call(`${ws(t.sid, t.tid)}?prefix=${"p".repeat(t.limit)}`, { key: t.key });
    expect(atLimit.status).toBe(200);
    expect((await json(atLimit)).items).toEqual([]);
    await expectLimitProblem(await call(`${ws(t.sid, t.tid)}?prefix=${"p".repeat(t.limit + 1)}`, { key: t.key }), t.limit, "prefix");
    await expectLimitProblem(await call(`${ws(t.sid, t.tid)}?prefix=${"p".repeat(1010)}`, { key: t.key }), t.limit, "prefix");
  });
});
