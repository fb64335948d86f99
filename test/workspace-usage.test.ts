import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { CURSOR_KEY, reconcileWorkspaceUsage } from "../src/cron/workspace-usage";
import worker from "../src/index";
import { call, createTeam, json, sessionWithTopic } from "./helpers";

// Storage accounting must converge on what R2 holds, whatever interleaves with a write or
// fails after it. These tests drive the real routes (through the Worker's fetch handler, with
// an R2 or D1 binding wrapped to pause or fail at one step) and the real cron handler.

const BASE = "https://switchboard.test";
const ws = (sid: string, tid: string, path: string) => `/v1/sessions/${sid}/topics/${tid}/workspace/${path}`;

/** Calls the Worker with some bindings replaced. */
async function callWith(bindings: Partial<Env>, path: string, init: RequestInit & { key: string }): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${init.key}`);
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(`${BASE}${path}`, { ...init, headers }), { ...env, ...bindings } as Env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

function putInit(key: string, body: string): RequestInit & { key: string } {
  const bytes = new TextEncoder().encode(body);
  return { method: "PUT", key, headers: { "Content-Type": "text/plain", "Content-Length": String(bytes.byteLength) }, body: bytes };
}

/**
 * The bucket, except that `method` on `key` holds its caller after R2 did it, until released:
 * the request's R2 step is done and its D1 step not yet begun.
 */
function pausedAfter(method: "put" | "delete", key: string) {
  let release = () => {};
  const gate = new Promise<void>((r) => (release = r));
  let arrived = () => {};
  const reached = new Promise<void>((r) => (arrived = r));
  const bucket = new Proxy(env.BUCKET, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (prop !== method) return value.bind(target);
      return async (...args: unknown[]) => {
        const out = await value.apply(target, args);
        if (args[0] === key) {
          arrived();
          await gate;
        }
        return out;
      };
    },
  });
  return { bucket, reached, release };
}

/** The D1 binding, except that any statement writing workspace_files fails, as D1 may after the R2 put. */
function failingWorkspaceWrites(): D1Database {
  return new Proxy(env.DB, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (prop !== "prepare") return value.bind(target);
      return (query: string) => {
        if (/^\s*(insert|update|delete)\b[\s\S]*\bworkspace_files\b/i.test(query)) throw new Error("D1_ERROR: simulated outage");
        return value.call(target, query);
      };
    },
  });
}

async function usage(key: string) {
  return (await json(await call("/v1/usage", { key }))).workspace as { bytes: number; objects: number };
}

/** What R2 holds for the team, as usage should count it. */
async function held(team: string) {
  const listed = await env.BUCKET.list({ prefix: `workspace/${team}/` });
  return { bytes: listed.objects.reduce((n, o) => n + o.size, 0), objects: listed.objects.length };
}

async function cron() {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, ctx);
  await waitOnExecutionContext(ctx);
}

async function rowsOf(team: string) {
  const { results } = await env.DB.prepare("SELECT session_id, topic_id, path, size, etag, uploaded_at FROM workspace_files WHERE team_id = ? ORDER BY path").bind(team).all();
  return results;
}

async function setUp() {
  const team = await createTeam();
  const { sid, tid } = await sessionWithTopic(team.api_key);
  return { team, sid, tid, key: (path: string) => `workspace/${team.team_id}/${sid}/${tid}/${path}` };
}

describe("workspace usage: a write's row follows what R2 holds", () => {
  it("a PUT paused after its R2 put while a DELETE of the path runs whole leaves no row (R2 holds nothing)", async () => {
    const { team, sid, tid, key } = await setUp();
    await (await call(ws(sid, tid, "a.txt"), putInit(team.api_key, "first"))).json();
    const paused = pausedAfter("put", key("a.txt"));
    const put = callWith({ BUCKET: paused.bucket }, ws(sid, tid, "a.txt"), putInit(team.api_key, "second!"));
    await paused.reached;
    const del = await call(ws(sid, tid, "a.txt"), { method: "DELETE", key: team.api_key });
    expect(del.status).toBe(204);
    paused.release();
    expect((await put).status).toBe(200);

    expect(await held(team.team_id)).toEqual({ bytes: 0, objects: 0 });
    // Before: the PUT wrote the row of the object the DELETE had removed: 7 bytes, 1 object, for good.
    expect(await usage(team.api_key)).toEqual({ bytes: 0, objects: 0 });
  });

  it("a DELETE paused after its R2 delete while a PUT of the path runs whole keeps the PUT's row", async () => {
    const { team, sid, tid, key } = await setUp();
    await (await call(ws(sid, tid, "b.txt"), putInit(team.api_key, "old"))).json();
    const paused = pausedAfter("delete", key("b.txt"));
    const del = callWith({ BUCKET: paused.bucket }, ws(sid, tid, "b.txt"), { method: "DELETE", key: team.api_key });
    await paused.reached;
    const put = await call(ws(sid, tid, "b.txt"), putInit(team.api_key, "new body"));
    expect(put.status).toBe(201);
    await put.json();
    paused.release();
    expect((await del).status).toBe(204);

    expect(await held(team.team_id)).toEqual({ bytes: 8, objects: 1 });
    // Before: the DELETE removed the row of the object the PUT had just stored: 0 bytes counted.
    expect(await usage(team.api_key)).toEqual({ bytes: 8, objects: 1 });
  });

  it("of two PUTs, the one that wrote R2 first and D1 last does not overwrite the newer size", async () => {
    const { team, sid, tid, key } = await setUp();
    const paused = pausedAfter("put", key("c.txt"));
    const slow = callWith({ BUCKET: paused.bucket }, ws(sid, tid, "c.txt"), putInit(team.api_key, "12345"));
    await paused.reached;
    await new Promise((r) => setTimeout(r, 5)); // R2 times are in ms: the second upload is later
    await (await call(ws(sid, tid, "c.txt"), putInit(team.api_key, "123456789"))).json();
    paused.release();
    await (await slow).json();

    expect(await held(team.team_id)).toEqual({ bytes: 9, objects: 1 });
    expect(await usage(team.api_key)).toEqual({ bytes: 9, objects: 1 });
    const [row] = await rowsOf(team.team_id);
    expect(row).toMatchObject({ path: "c.txt", size: 9, etag: (await env.BUCKET.head(key("c.txt")))?.httpEtag });
  });
});

describe("workspace usage: the cron reconciles rows with R2", () => {
  // Storage is shared by this file's tests: each starts its walks from the beginning.
  beforeEach(async () => {
    await env.BUCKET.delete(CURSOR_KEY);
  });

  it("a PUT whose D1 write failed after the R2 put is counted after the next cron run", async () => {
    const { team, sid, tid } = await setUp();
    const failed = await callWith({ DB: failingWorkspaceWrites() }, ws(sid, tid, "lost-row.bin"), putInit(team.api_key, "0123456789"));
    expect(failed.status).toBe(500);
    await failed.body?.cancel();
    expect(await held(team.team_id)).toEqual({ bytes: 10, objects: 1 });
    expect(await usage(team.api_key)).toEqual({ bytes: 0, objects: 0 });

    await cron();
    expect(await usage(team.api_key)).toEqual({ bytes: 10, objects: 1 });
  });

  it("drift made behind the route's back (object deleted, object without a row, stale and wrong rows) heals at the next cron run", async () => {
    const { team, sid, tid, key } = await setUp();
    for (const [path, body] of [
      ["keep.txt", "keep"],
      ["gone.txt", "will be deleted behind the route's back"],
      ["resized.txt", "abc"],
    ]) {
      await (await call(ws(sid, tid, path as string), putInit(team.api_key, body as string))).json();
    }
    // An object deleted without its row; one stored without a row; a row of a file that never
    // was; a row with the wrong size, dated after the object (a row never wins by its date alone).
    await env.BUCKET.delete(key("gone.txt"));
    await env.BUCKET.put(key("no-row/x.bin"), new Uint8Array(20));
    await env.DB.prepare("INSERT INTO workspace_files VALUES (?, ?, ?, ?, ?, ?, ?)").bind(team.team_id, sid, tid, "ghost.txt", 1000, '"abc"', "2020-01-01T00:00:00.000Z").run();
    await env.DB.prepare("UPDATE workspace_files SET size = 999, uploaded_at = '2999-01-01T00:00:00.000Z' WHERE team_id = ? AND path = 'resized.txt'").bind(team.team_id).run();
    // A topic whose only files are rows: no object of it is listed at all.
    const other = await sessionWithTopic(team.api_key, "t2");
    await env.DB.prepare("INSERT INTO workspace_files VALUES (?, ?, ?, ?, ?, ?, ?)").bind(team.team_id, other.sid, other.tid, "only-a-row.txt", 77, '"def"', "2020-01-01T00:00:00.000Z").run();
    expect(await usage(team.api_key)).not.toEqual(await held(team.team_id));

    await cron();
    const truth = await held(team.team_id);
    expect(truth).toEqual({ bytes: 4 + 3 + 20, objects: 3 });
    expect(await usage(team.api_key)).toEqual(truth);
    const listed = await env.BUCKET.list({ prefix: `workspace/${team.team_id}/` });
    expect(await rowsOf(team.team_id)).toEqual(
      listed.objects.map((o) => ({ session_id: sid, topic_id: tid, path: o.key.slice(key("").length), size: o.size, etag: o.httpEtag, uploaded_at: o.uploaded.toISOString() })),
    );
  });

  it("works in bounded slices: a run lists at most `objects` keys and settles at most `fixes`, and a pass over several runs heals everything", async () => {
    const { team, sid, tid, key } = await setUp();
    const b = await sessionWithTopic(team.api_key, "t2");
    const bKey = (path: string) => `workspace/${team.team_id}/${b.sid}/${b.tid}/${path}`;
    // Objects with no rows in two topics, rows with no objects between and after them, and a
    // topic with rows only.
    for (let i = 0; i < 5; i++) await env.BUCKET.put(key(`f${i}`), "x".repeat(i + 1));
    for (let i = 0; i < 3; i++) await env.BUCKET.put(bKey(`g${i}`), "yy");
    const ghost = env.DB.prepare("INSERT INTO workspace_files VALUES (?, ?, ?, ?, ?, 'e', '2020-01-01T00:00:00.000Z')");
    await env.DB.batch([ghost.bind(team.team_id, sid, tid, "f1a", 10), ghost.bind(team.team_id, sid, tid, "f9", 10), ghost.bind(team.team_id, b.sid, b.tid, "g0a", 10)]);
    const c = await sessionWithTopic(team.api_key, "t3");
    await env.DB.batch([ghost.bind(team.team_id, c.sid, c.tid, "only1", 5), ghost.bind(team.team_id, c.sid, c.tid, "only2", 5)]);

    const truth = await held(team.team_id);
    expect(truth).toEqual({ bytes: 1 + 2 + 3 + 4 + 5 + 6, objects: 8 });
    // Runs until one settles nothing with both walks back at the start (a whole pass clean).
    let settled = 0;
    let runs = 0;
    for (;;) {
      const r = await reconcileWorkspaceUsage(env, { objects: 3, topics: 1, fixes: 2 });
      runs += 1;
      expect(r.objects).toBeLessThanOrEqual(3);
      expect(r.topics).toBeLessThanOrEqual(1);
      expect(r.settled).toBeLessThanOrEqual(2);
      settled += r.settled;
      if (runs > 1 && r.settled === 0 && r.cursor.objects === null && r.cursor.topics === null) break;
      expect(runs).toBeLessThan(100);
      // The cursor is kept in R2 between runs.
      if (r.cursor.objects !== null) expect(await (await env.BUCKET.get(CURSOR_KEY))?.json()).toEqual(r.cursor);
    }
    expect(runs).toBeGreaterThan(6); // 13 mismatches at 2 a run
    // Each settled once: 8 objects without rows, 5 rows without objects (and nothing else was off).
    expect(settled).toBe(13);
    expect(await usage(team.api_key)).toEqual(truth);
  });

  it("a run with nothing to fix writes nothing", async () => {
    const { team, sid, tid } = await setUp();
    await (await call(ws(sid, tid, "ok.txt"), putInit(team.api_key, "fine"))).json();
    const before = await rowsOf(team.team_id);
    const r = await reconcileWorkspaceUsage(env);
    expect(r).toMatchObject({ settled: 0, recorded: 0, forgotten: 0, cursor: { objects: null, topics: null } });
    expect(r.objects).toBeGreaterThanOrEqual(1);
    expect(await env.BUCKET.head(CURSOR_KEY)).toBeNull();
    expect(await rowsOf(team.team_id)).toEqual(before);
  });
});
