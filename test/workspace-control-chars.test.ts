import { describe, expect, it } from "vitest";
import { call, createTeam, json, sessionWithTopic } from "./helpers";

// "A path with … control characters … is 400": C0 (U+0000–U+001F), DEL (U+007F) and C1
// (U+0080–U+009F, e.g. U+0085 NEXT LINE, which some tools treat as a line break). C1 arrive
// as two UTF-8 bytes, %C2%80–%C2%9F.
const ws = (sid: string, tid: string, path: string) => `/v1/sessions/${sid}/topics/${tid}/workspace/${path}`;

async function put(key: string, url: string, body: string) {
  return call(url, { method: "PUT", key, headers: { "Content-Type": "text/plain", "Content-Length": String(new TextEncoder().encode(body).byteLength) }, body });
}

describe("workspace: control characters in a path", () => {
  it("C1 controls (U+0080–U+009F) are refused like C0 and DEL, on PUT, GET and DELETE", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    for (const path of ["a%C2%80b", "a%C2%85b", "logs/%C2%9F.txt", "a%7Fb", "a%1Fb"]) {
      for (const method of ["PUT", "GET", "DELETE"]) {
        const res = method === "PUT" ? await put(team.api_key, ws(sid, tid, path), "x") : await call(ws(sid, tid, path), { method, key: team.api_key });
        expect(res.status, `${method} ${path}`).toBe(400);
        const body = await json(res);
        expect(body.errors[0], `${method} ${path}`).toEqual({ path: "path", message: "the path contains control characters" });
      }
    }
    expect(await json(await call("/v1/usage", { key: team.api_key }))).toEqual({ workspace: { bytes: 0, objects: 0 } });
  });

  it("the characters around them are fine: U+00A0 (no-break space), U+00A1, U+007E", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    for (const [encoded, path] of [
      ["a%C2%A0b", "a\u00a0b"],
      ["a%C2%A1b", "a\u00a1b"],
      ["a~b", "a~b"],
    ]) {
      const res = await put(team.api_key, ws(sid, tid, encoded as string), "x");
      expect(res.status, path).toBe(201);
      expect((await json(res)).path).toBe(path);
    }
  });
});
