import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { writeConditions } from "../src/lib/workspace-http";
import { call, createTeam, json, sessionWithTopic } from "./helpers";

// Conditional and range GETs as RFC 9110 lays them out (§13.2.2 for the order of the
// preconditions, §14 for ranges), against the real R2 binding.
const BODY = "hello world"; // 11 bytes

let key: string;
let url: string;
let etag: string;
let lastModified: string;

async function put(path: string, body: string) {
  const res = await call(path, { method: "PUT", key, headers: { "Content-Type": "text/plain", "Content-Length": String(new TextEncoder().encode(body).byteLength) }, body });
  expect(res.status).toBe(201);
  return json(res);
}

beforeAll(async () => {
  const team = await createTeam();
  key = team.api_key;
  const { sid, tid } = await sessionWithTopic(key);
  url = `/v1/sessions/${sid}/topics/${tid}/workspace/hello.txt`;
  etag = (await put(url, BODY)).etag;
  const got = await call(url, { key });
  lastModified = got.headers.get("last-modified") as string;
  await got.body?.cancel();
  await put(`/v1/sessions/${sid}/topics/${tid}/workspace/empty.txt`, "");
});

const get = (headers: Record<string, string>, method = "GET", path = url) => call(path, { method, key, headers });
const past = new Date(Date.now() - 86_400_000).toUTCString();
const future = new Date(Date.now() + 86_400_000).toUTCString();

async function expectWhole(res: Response, what: string) {
  expect(res.status, what).toBe(200);
  expect(res.headers.get("content-range"), what).toBeNull();
  expect(res.headers.get("content-length"), what).toBe("11");
  expect(await res.text(), what).toBe(BODY);
}

async function expectPart(res: Response, what: string, range: string, body: string) {
  expect(res.status, what).toBe(206);
  expect(res.headers.get("content-range"), what).toBe(range);
  expect(res.headers.get("content-length"), what).toBe(String(body.length));
  expect(await res.text(), what).toBe(body);
}

async function expectProblem(res: Response, status: number, what: string) {
  expect(res.status, what).toBe(status);
  expect(res.headers.get("content-type"), what).toMatch(/^application\/problem\+json/);
  expect((await json(res)).status, what).toBe(status);
}

describe("workspace GET: ranges", () => {
  it("a satisfiable single byte range is 206 with just those bytes", async () => {
    await expectPart(await get({ Range: "bytes=0-4" }), "first five", "bytes 0-4/11", "hello");
    await expectPart(await get({ Range: "bytes=6-" }), "open-ended", "bytes 6-10/11", "world");
    await expectPart(await get({ Range: "bytes=-5" }), "suffix", "bytes 6-10/11", "world");
    await expectPart(await get({ Range: "bytes=-50" }), "suffix longer than the file", "bytes 0-10/11", BODY);
    await expectPart(await get({ Range: "bytes=4-100" }), "last past the end is clamped", "bytes 4-10/11", "o world");
    await expectPart(await get({ Range: "bytes=10-10" }), "the last byte", "bytes 10-10/11", "d");
    await expectPart(await get({ Range: "BYTES=0-0" }), "the unit is case-insensitive", "bytes 0-0/11", "h");
    await expectPart(await get({ Range: "bytes=0-99999999999999999999999" }), "a huge last", "bytes 0-10/11", BODY);
  });

  it("an unsatisfiable range is 416 with Content-Range: bytes */size, never the body or a 500", async () => {
    for (const range of ["bytes=100-200", "bytes=11-", "bytes=11-20", "bytes=-0", "bytes=99999999999999999999-"]) {
      const res = await get({ Range: range });
      expect(res.headers.get("content-range"), range).toBe("bytes */11");
      await expectProblem(res, 416, range);
    }
    // An empty file has no byte to give.
    for (const range of ["bytes=0-0", "bytes=-1"]) {
      const res = await get({ Range: range }, "GET", url.replace("hello.txt", "empty.txt"));
      expect(res.headers.get("content-range"), range).toBe("bytes */0");
      await expectProblem(res, 416, `empty file, ${range}`);
    }
  });

  it("an unknown unit, a malformed range, or several ranges are ignored: 200 with the whole body", async () => {
    for (const range of ["items=0-1", "bytes=abc", "bytes=5-2", "bytes=", "bytes=1-2-3", "bytes 0-1", "0-1", "bytes=0-1,3-4", "bytes=0-1, 100-200", "bytes=100-200,300-400"]) {
      await expectWhole(await get({ Range: range }), range);
    }
  });
});

describe("workspace GET: preconditions", () => {
  it("If-Match: a current tag or * is 200; another tag, or a weak one, is 412", async () => {
    await expectWhole(await get({ "If-Match": etag }), "the current tag");
    await expectWhole(await get({ "If-Match": `"nope", ${etag}` }), "a list holding it");
    await expectWhole(await get({ "If-Match": "*" }), "*");
    await expectProblem(await get({ "If-Match": '"nope"' }), 412, "another tag");
    await expectProblem(await get({ "If-Match": `W/${etag}` }), 412, "If-Match compares strongly");
  });

  it("If-Unmodified-Since: in the past is 412, at or after the upload is 200, unparsable is ignored", async () => {
    await expectProblem(await get({ "If-Unmodified-Since": past }), 412, "past");
    await expectWhole(await get({ "If-Unmodified-Since": lastModified }), "Last-Modified itself");
    await expectWhole(await get({ "If-Unmodified-Since": future }), "future");
    await expectWhole(await get({ "If-Unmodified-Since": "yesterday-ish" }), "not a date");
    // If-Match present: If-Unmodified-Since is not evaluated.
    await expectWhole(await get({ "If-Match": etag, "If-Unmodified-Since": past }), "If-Match wins");
  });

  it("If-None-Match: the current tag (weak or strong) or * is 304 with the ETag; another tag is 200", async () => {
    for (const inm of [etag, `W/${etag}`, `"a", ${etag}`, "*"]) {
      const res = await get({ "If-None-Match": inm });
      expect(res.status, inm).toBe(304);
      expect(res.headers.get("etag"), inm).toBe(etag);
      expect(await res.text(), inm).toBe("");
    }
    await expectWhole(await get({ "If-None-Match": '"other"' }), "another tag");
  });

  it("If-Modified-Since: not modified since is 304, modified since is 200; ignored when If-None-Match is sent", async () => {
    const notModified = await get({ "If-Modified-Since": lastModified });
    expect(notModified.status).toBe(304);
    await notModified.body?.cancel();
    await expectWhole(await get({ "If-Modified-Since": past }), "modified since");
    await expectWhole(await get({ "If-None-Match": '"other"', "If-Modified-Since": future }), "If-None-Match wins");
  });

  it("the order: If-Match fails before If-None-Match is looked at (412), and a 304 wins over a range", async () => {
    await expectProblem(await get({ "If-Match": '"nope"', "If-None-Match": etag }), 412, "If-Match first");
    const res = await get({ "If-None-Match": etag, Range: "bytes=0-1" });
    expect(res.status).toBe(304);
    await res.body?.cancel();
    await expectProblem(await get({ "If-Match": '"nope"', Range: "bytes=100-200" }), 412, "preconditions before the range");
    await expectPart(await get({ "If-Match": etag, Range: "bytes=0-4" }), "both hold", "bytes 0-4/11", "hello");
  });

  it("If-Range: the current tag or Last-Modified keeps the range (206); anything else sends the whole file (200)", async () => {
    await expectPart(await get({ "If-Range": etag, Range: "bytes=6-" }), "current tag", "bytes 6-10/11", "world");
    await expectPart(await get({ "If-Range": lastModified, Range: "bytes=6-" }), "Last-Modified", "bytes 6-10/11", "world");
    await expectWhole(await get({ "If-Range": '"old"', Range: "bytes=6-" }), "old tag");
    await expectWhole(await get({ "If-Range": `W/${etag}`, Range: "bytes=6-" }), "weak tag");
    await expectWhole(await get({ "If-Range": past, Range: "bytes=6-" }), "another date");
    await expectWhole(await get({ "If-Range": '"old"', Range: "bytes=100-200" }), "If-Range false: no 416 either");
  });

  it("HEAD answers as GET would, without a body", async () => {
    const ok = await get({ Range: "bytes=0-4" }, "HEAD");
    expect(ok.status).toBe(206);
    expect(ok.headers.get("content-range")).toBe("bytes 0-4/11");
    await ok.body?.cancel();
    for (const [headers, status] of [
      [{ "If-Match": '"nope"' }, 412],
      [{ "If-None-Match": etag }, 304],
      [{ Range: "bytes=100-200" }, 416],
    ] as const) {
      const res = await get(headers, "HEAD");
      expect(res.status, JSON.stringify(headers)).toBe(status);
      expect(await res.text()).toBe("");
    }
  });

  it("a missing file is 404 whatever the conditions", async () => {
    const cases: Array<Record<string, string>> = [{ "If-Match": "*" }, { "If-None-Match": "*" }, { Range: "bytes=0-1" }];
    for (const headers of cases) {
      await expectProblem(await get(headers, "GET", url.replace("hello.txt", "missing.txt")), 404, JSON.stringify(headers));
    }
  });
});

describe("conditional PUT and DELETE (RFC 9110 §13.2.2): a precondition that fails is 412 and changes nothing", () => {
  const write = (path: string, body: string, headers: Record<string, string> = {}) =>
    call(path, { method: "PUT", key, headers: { "Content-Type": "text/plain", "Content-Length": String(new TextEncoder().encode(body).byteLength), ...headers }, body });
  const read = async (path: string) => {
    const res = await call(path, { key });
    return res.status === 200 ? res.text() : (await res.body?.cancel(), res.status);
  };

  it("PUT: If-Match with another or a weak tag, If-Match on a missing file, If-None-Match: * on an existing one, an old If-Unmodified-Since: 412", async () => {
    const path = url.replace("hello.txt", "cond.txt");
    const first = await json(await write(path, "v1"));
    for (const headers of <Record<string, string>[]>[{ "If-Match": '"nope"' }, { "If-Match": `W/${first.etag}` }, { "If-None-Match": "*" }, { "If-None-Match": `W/${first.etag}` }, { "If-Unmodified-Since": past }]) {
      const res = await write(path, "changed", headers);
      expect(res.status, JSON.stringify(headers)).toBe(412);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      await res.text();
    }
    expect(await read(path)).toBe("v1");
    const missing = await write(url.replace("hello.txt", "none.txt"), "x", { "If-Match": "*" });
    expect(missing.status).toBe(412);
    await missing.text();
    expect(await read(url.replace("hello.txt", "none.txt"))).toBe(404);
  });

  it("PUT: If-Match with the current tag (or *, or a list holding it) and If-None-Match: * on a new file go through", async () => {
    const path = url.replace("hello.txt", "cond2.txt");
    const created = await write(path, "v1", { "If-None-Match": "*" });
    expect(created.status).toBe(201);
    const v1 = await json(created);
    const v2 = await write(path, "v2", { "If-Match": `"other", ${v1.etag}` });
    expect(v2.status).toBe(200);
    const { etag: e2 } = await json(v2);
    // v1's tag is stale now: a lost update is refused.
    const stale = await write(path, "v3", { "If-Match": v1.etag });
    expect(stale.status).toBe(412);
    await stale.text();
    expect(await read(path)).toBe("v2");
    const star = await write(path, "v3", { "If-Match": "*" });
    expect(star.status).toBe(200);
    await star.text();
    expect(e2).not.toBe(v1.etag);
  });

  it("PUT: If-Unmodified-Since at the file's own Last-Modified (whole seconds) holds; an empty If-None-Match list names nothing", async () => {
    const path = url.replace("hello.txt", "cond-ius.txt");
    await (await write(path, "fresh")).text();
    const fresh = await call(path, { key });
    // The upload time has milliseconds the date has not: that same second is "not modified since".
    const freshModified = fresh.headers.get("last-modified") as string;
    await fresh.body?.cancel();
    const held = await write(path, "held", { "If-Unmodified-Since": freshModified });
    expect(held.status).toBe(200);
    await held.text();
    const empty = await write(path, "empty-list", { "If-None-Match": "," });
    expect(empty.status).toBe(200);
    await empty.text();
    expect(await read(path)).toBe("empty-list");
  });

  it("DELETE: a failed If-Match or If-None-Match is 412 and the file stays; the current tag deletes it", async () => {
    const path = url.replace("hello.txt", "cond3.txt");
    const { etag: current } = await json(await write(path, "keep"));
    for (const headers of <Record<string, string>[]>[{ "If-Match": '"nope"' }, { "If-None-Match": "*" }, { "If-None-Match": current }]) {
      const res = await call(path, { method: "DELETE", key, headers });
      expect(res.status, JSON.stringify(headers)).toBe(412);
      await res.text();
    }
    expect(await read(path)).toBe("keep");
    const del = await call(path, { method: "DELETE", key, headers: { "If-Match": current } });
    expect(del.status).toBe(204);
    expect(await read(path)).toBe(404);
  });
});

describe("writeConditions: what R2 checks again as it writes", () => {
  it("R2 refuses a put whose If-Match tag went stale meanwhile, and a create-only put on an existing key", async () => {
    const k = `test/write-conditions/${crypto.randomUUID()}`;
    const v1 = await env.BUCKET.put(k, "v1");
    await env.BUCKET.put(k, "v2"); // another writer, between our read and our write
    expect(await env.BUCKET.put(k, "v3", { onlyIf: writeConditions(new Headers({ "If-Match": v1?.httpEtag ?? "" })) })).toBeNull();
    expect(await env.BUCKET.put(k, "v3", { onlyIf: writeConditions(new Headers({ "If-None-Match": "*" })) })).toBeNull();
    expect(await (await env.BUCKET.get(k))?.text()).toBe("v2");
    const current = await env.BUCKET.head(k);
    // A bare token (quotes stripped by the client) and a list are re-quoted into one form R2 parses.
    const bare = (current?.httpEtag ?? "").replaceAll('"', "");
    expect(await env.BUCKET.put(k, "v4", { onlyIf: writeConditions(new Headers({ "If-Match": `"x", ${bare}` })) })).not.toBeNull();
    expect(writeConditions(new Headers({ "If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT" }))).toBeUndefined();
  });
});

describe("a stored file stays inert in a browser", () => {
  it("HTML an agent uploads (even with an inline disposition) comes back as an attachment, unsniffed and sandboxed, whole or ranged", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const path = `/v1/sessions/${sid}/topics/${tid}/workspace/out/report (final).html`;
    const html = "<script>fetch('/v1/keys',{method:'POST'})</script>";
    const res = await call(path, { method: "PUT", key: team.api_key, headers: { "Content-Type": "text/html", "Content-Disposition": "inline", "Content-Length": String(html.length) }, body: html });
    expect(res.status).toBe(201);
    await res.body?.cancel();
    for (const headers of <Record<string, string>[]>[{}, { Range: "bytes=0-7" }, { "If-None-Match": '"other"' }]) {
      const got = await call(path, { key: team.api_key, headers });
      expect(got.status).toBeLessThan(300);
      expect(got.headers.get("content-type")).toBe("text/html"); // kept, so a download opens with the right program
      expect(got.headers.get("content-disposition")).toBe("attachment; filename*=UTF-8''report%20%28final%29.html");
      expect(got.headers.get("x-content-type-options")).toBe("nosniff");
      expect(got.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
      await got.body?.cancel();
    }
  });
});
