import { describe, expect, it } from "vitest";
import { SseReader, call, createKey, createTeam, errorPaths, expectProblem, json, sessionWithTopic } from "./helpers";

const ws = (sid: string, tid: string, path = "") => `/v1/sessions/${sid}/topics/${tid}/workspace${path ? `/${path}` : ""}`;

async function put(key: string, url: string, body: string | Uint8Array, type = "text/plain") {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  return call(url, { method: "PUT", key, headers: { "Content-Type": type, "Content-Length": String(bytes.byteLength) }, body: bytes });
}

describe("workspace: what works", () => {
  it("stores, reads, lists, replaces and deletes files, announcing each write on the topic stream", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const sse = new SseReader(await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: team.api_key }));
    await sse.next();
    await sse.nextEvent();

    const created = await put(team.api_key, ws(sid, tid, "logs/design chat.jsonl"), '{"turn":1}\n', "application/x-ndjson");
    expect(created.status).toBe(201);
    const file = await json(created);
    expect(file).toMatchObject({ path: "logs/design chat.jsonl", size: 11, content_type: "application/x-ndjson" });
    expect(created.headers.get("etag")).toBe(file.etag);

    const sync = await sse.nextEvent();
    expect(sync.event).toBe("workspace.sync");
    expect(JSON.parse(sync.data).data.files).toEqual([{ path: "logs/design chat.jsonl", size: 11, etag: file.etag }]);

    const got = await call(ws(sid, tid, "logs/design%20chat.jsonl"), { key: team.api_key });
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe("application/x-ndjson");
    expect(await got.text()).toBe('{"turn":1}\n');

    const notModified = await call(ws(sid, tid, "logs/design%20chat.jsonl"), { key: team.api_key, headers: { "If-None-Match": file.etag } });
    expect(notModified.status).toBe(304);
    await notModified.body?.cancel();

    const ranged = await call(ws(sid, tid, "logs/design%20chat.jsonl"), { key: team.api_key, headers: { Range: "bytes=2-5" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe("bytes 2-5/11");
    expect(await ranged.text()).toBe("turn");

    await (await put(team.api_key, ws(sid, tid, "logs/explore.jsonl"), "x")).json();
    await (await put(team.api_key, ws(sid, tid, "result.csv"), "a,b\n")).json();
    const replaced = await put(team.api_key, ws(sid, tid, "result.csv"), "a,b\n1,2\n");
    expect(replaced.status).toBe(200);
    await replaced.json();

    const page1 = await json(await call(`${ws(sid, tid)}?prefix=logs/&limit=1`, { key: team.api_key }));
    expect(page1.items.map((f: any) => f.path)).toEqual(["logs/design chat.jsonl"]);
    expect(page1.next_cursor).toEqual(expect.any(String));
    const page2 = await json(await call(`${ws(sid, tid)}?prefix=logs/&limit=1&cursor=${encodeURIComponent(page1.next_cursor)}`, { key: team.api_key }));
    expect(page2.items.map((f: any) => f.path)).toEqual(["logs/explore.jsonl"]);
    // A cursor the API never gave, or one of another listing (another prefix), is 400.
    for (const bad of ["garbage", page1.next_cursor]) {
      const query = bad === "garbage" ? "prefix=logs/&cursor=garbage" : `prefix=lo&cursor=${encodeURIComponent(bad)}`;
      expect(errorPaths(await expectProblem(await call(`${ws(sid, tid)}?${query}`, { key: team.api_key }), 400))).toEqual(["cursor"]);
    }

    expect(await json(await call("/v1/usage", { key: team.api_key }))).toEqual({ workspace: { bytes: 11 + 1 + 8, objects: 3 } });

    const del = await call(ws(sid, tid, "result.csv"), { method: "DELETE", key: team.api_key });
    expect(del.status).toBe(204);
    const gone = await call(ws(sid, tid, "result.csv"), { key: team.api_key });
    expect(gone.status).toBe(404);
    await gone.json();
    expect(await json(await call("/v1/usage", { key: team.api_key }))).toEqual({ workspace: { bytes: 12, objects: 2 } });
    await sse.close();
  });

  it("streams a large body through (5 MB, binary) and gives it back byte for byte", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const bytes = new Uint8Array(5 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = i % 251;
    const res = await put(team.api_key, ws(sid, tid, "artifacts/model.bin"), bytes, "application/octet-stream");
    expect(res.status).toBe(201);
    expect((await json(res)).size).toBe(bytes.length);
    const back = new Uint8Array(await (await call(ws(sid, tid, "artifacts/model.bin"), { key: team.api_key })).arrayBuffer());
    expect(back.length).toBe(bytes.length);
    expect(back[4096 * 7]).toBe((4096 * 7) % 251);
  });
});

describe("workspace: what is refused", () => {
  it("refuses bad paths (400), a body without Content-Length (411) and one over 100 MB (413)", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    // URL parsing already resolves literal and %2E%2E dot segments; encoded slashes smuggle them.
    for (const path of ["a%2F..%2Fb", "..%2Fsecret", "%2Fetc", "a%00b", "a//b", "a%0Ab", "x".repeat(1025)]) {
      const res = await put(team.api_key, ws(sid, tid, path), "x");
      expect(res.status, path).toBe(400);
      expect((await json(res)).errors[0].path).toBe("path");
    }
    const chunked = await call(ws(sid, tid, "a.txt"), {
      method: "PUT",
      key: team.api_key,
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode("hi"));
          c.close();
        },
      }),
      // @ts-expect-error workerd needs duplex for a streamed request body
      duplex: "half",
    });
    expect(chunked.status).toBe(411);
    await chunked.json();
    const huge = await call(ws(sid, tid, "big.bin"), { method: "PUT", key: team.api_key, headers: { "Content-Length": String(100 * 1024 * 1024 + 1) }, body: "x" });
    expect(huge.status).toBe(413);
    await huge.json();
    expect(await json(await call("/v1/usage", { key: team.api_key }))).toEqual({ workspace: { bytes: 0, objects: 0 } });
  });

  it("a read key cannot write; another team's topic is 404", async () => {
    const team = await createTeam();
    const other = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    await (await put(team.api_key, ws(sid, tid, "f.txt"), "secret")).json();
    const reader = await createKey(team.api_key, ["read"]);
    const denied = await put(reader, ws(sid, tid, "f.txt"), "x");
    expect(denied.status).toBe(403);
    await denied.json();
    for (const [method, path] of [["GET", ws(sid, tid, "f.txt")], ["DELETE", ws(sid, tid, "f.txt")], ["GET", ws(sid, tid)]] as const) {
      const res = await call(path, { method, key: other.api_key });
      expect(res.status, `${method} ${path}`).toBe(404);
      await res.json();
    }
    const write = await put(other.api_key, ws(sid, tid, "f.txt"), "overwrite");
    expect(write.status).toBe(404);
    await write.json();
    expect(await (await call(ws(sid, tid, "f.txt"), { key: team.api_key })).text()).toBe("secret");
  });
});
