import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { call, createTeam, json, sessionWithTopic } from "./helpers";

// A failed upload is the client's mistake (400) only when its body broke off or did not match
// its Content-Length; R2 failing to take a whole, well-formed body is the platform's (503).
// These call the Worker's fetch handler directly: SELF.fetch rewrites Content-Length to the
// body it was given, and an R2 outage can only be played by a wrapped binding.

const BASE = "https://switchboard.test";
const ws = (sid: string, tid: string, path: string) => `/v1/sessions/${sid}/topics/${tid}/workspace/${path}`;

async function putWith(bucket: R2Bucket, key: string, path: string, body: BodyInit, length: number): Promise<Response> {
  const headers = new Headers({ Authorization: `Bearer ${key}`, "Content-Type": "text/plain", "Content-Length": String(length) });
  const ctx = createExecutionContext();
  const init: RequestInit & { duplex?: string } = { method: "PUT", headers, body };
  if (body instanceof ReadableStream) init.duplex = "half";
  const res = await worker.fetch(new Request(`${BASE}${path}`, init), { ...env, BUCKET: bucket } as Env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/** The bucket, except that every put fails as R2 may (after reading the whole body). */
function failingPuts(): R2Bucket {
  return new Proxy(env.BUCKET, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (prop !== "put") return value.bind(target);
      return async (_key: string, body: ReadableStream) => {
        await new Response(body).arrayBuffer();
        throw new Error("R2 put: We encountered an internal error. Please try again. (10001)");
      };
    },
  });
}

async function nothingStored(apiKey: string, sid: string, tid: string, path: string) {
  const got = await call(ws(sid, tid, path), { key: apiKey });
  expect(got.status).toBe(404);
  await got.json();
  expect((await json(await call("/v1/usage", { key: apiKey }))).workspace).toEqual({ bytes: 0, objects: 0 });
}

describe("workspace PUT: whose fault a failed upload is", () => {
  it("a body shorter or longer than its Content-Length is 400 naming the counts, and stores nothing", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const short = await putWith(env.BUCKET, team.api_key, ws(sid, tid, "short.txt"), "abc", 10);
    expect(short.status).toBe(400);
    expect(short.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect((await json(short)).detail).toContain("ended after 3 of 10 bytes");
    const long = await putWith(env.BUCKET, team.api_key, ws(sid, tid, "long.txt"), "abcdef", 2);
    expect(long.status).toBe(400);
    expect((await json(long)).detail).toContain("more than the 2 bytes declared");
    await nothingStored(team.api_key, sid, tid, "short.txt");
    await nothingStored(team.api_key, sid, tid, "long.txt");
  });

  it("a body that breaks off mid-upload is 400, not blamed on storage", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    let sent = false;
    const breaking = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(new TextEncoder().encode("half"));
        } else controller.error(new Error("connection reset by peer"));
      },
    });
    const res = await putWith(env.BUCKET, team.api_key, ws(sid, tid, "cut.txt"), breaking, 8);
    expect(res.status).toBe(400);
    expect((await json(res)).detail).toContain("broke off after 4 of 8 bytes");
    await nothingStored(team.api_key, sid, tid, "cut.txt");
  });

  it("storage failing to take a whole, well-formed body is 503 with Retry-After, and no row or event", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const res = await putWith(failingPuts(), team.api_key, ws(sid, tid, "ok.txt"), "hello", 5);
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(res.headers.get("retry-after")).toBe("1");
    const body = await json(res);
    expect(body.detail).toContain("nothing was written");
    // The platform's failure text is not handed to the client.
    expect(body.detail).not.toContain("10001");
    await nothingStored(team.api_key, sid, tid, "ok.txt");
    // The same upload against working storage goes through: the body was never the problem.
    const retried = await putWith(env.BUCKET, team.api_key, ws(sid, tid, "ok.txt"), "hello", 5);
    expect(retried.status).toBe(201);
    expect((await json(retried)).size).toBe(5);
  });
});
