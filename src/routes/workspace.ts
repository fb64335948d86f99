import { decodeCursor, encodeCursor } from "../lib/pagination";
import { createRoute, z } from "@hono/zod-openapi";
import { and, eq, sql } from "drizzle-orm";
import type { Context } from "hono";
import { dbOf } from "../db/client";
import { indexTopic } from "../db/index-rows";
import { settleFile } from "../db/workspace";
import { topics, workspaceFiles } from "../db/schema";
import { WORKSPACE_MAX_BYTES, workspaceKey, workspaceLengthProblem, workspacePathMaxBytes, workspacePathProblem } from "../domain/workspace-path";
import type { AppEnv } from "../lib/app-env";
import { authenticate, requireScope } from "../lib/auth";
import { ApiError } from "../lib/errors";
import { topicHub } from "../lib/hubs";
import { clientId } from "../lib/ids";
import { evaluatePreconditions, ifRangeHolds, inertFileHeaders, parseRange, resolveRange, workspaceProblem, writeConditions, writePreconditionsHold } from "../lib/workspace-http";
import { newRouter, problemResponses, security } from "../lib/openapi";
import { putAtDeclaredLength } from "../lib/workspace-upload";

/**
 * A topic's workspace on R2: chat logs and artifacts, any content type, streamed through
 * (never buffered whole), up to 100 MB a file. Every write or delete is announced on the
 * topic stream as `workspace.sync`.
 */
export const workspaceRoutes = newRouter();

const BASE = "/v1/sessions/:sid/topics/:tid/workspace";
workspaceRoutes.use(BASE, authenticate);
workspaceRoutes.use(`${BASE}/*`, authenticate);

export const workspaceFileSchema = z.object({ path: z.string(), size: z.number(), etag: z.string(), uploaded: z.string(), content_type: z.string().nullable() });
export type WorkspaceFile = z.infer<typeof workspaceFileSchema>;

/** The team's topic, or 404: a file never lands in, or is read from, a topic the team lacks. */
async function topicOf(c: Context<AppEnv>) {
  const parsed = z.object({ sid: clientId, tid: clientId }).safeParse({ sid: c.req.param("sid"), tid: c.req.param("tid") });
  if (!parsed.success) throw new ApiError("not_found", "No such topic.");
  const { sid, tid } = parsed.data;
  const team = c.get("auth").team_id;
  const row = await dbOf(c.env)
    .select({ id: topics.id })
    .from(topics)
    .where(and(eq(topics.teamId, team), eq(topics.sessionId, sid), eq(topics.id, tid)))
    .get();
  if (!row) throw new ApiError("not_found", `No topic ${tid} in session ${sid}.`);
  return { team, sid, tid };
}

type Topic = { team: string; sid: string; tid: string };

/** The file path from the URL, validated for this topic (its key must fit R2's 1,024 bytes). */
function filePath(c: Context<AppEnv>, t: Topic): string {
  // The route is `/v1/sessions/:sid/topics/:tid/workspace/*`, so the file path is everything
  // after its seventh `/`. Searching the URL for `/workspace/` instead would stop at a
  // session or topic named `workspace` and store the file under the wrong path. The first
  // segments are checked against the ids Hono matched, decoded one by one, since a client may
  // percent-encode any of them (`%77orkspace`); an encoded `/` (%2F) stays inside its segment
  // here and only becomes a separator once the file path itself is decoded below.
  const segments = new URL(c.req.url).pathname.split("/");
  const route = ["", "v1", "sessions", t.sid, "topics", t.tid, "workspace"];
  let path: string;
  try {
    if (segments.length <= route.length || route.some((want, i) => decodeURIComponent(segments[i] as string) !== want)) {
      // Hono matched this route, so this cannot happen; refuse rather than guess a path.
      throw new ApiError("not_found", "No such workspace route.");
    }
    path = decodeURIComponent(segments.slice(route.length).join("/"));
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError("validation", "The path is not valid percent-encoding.", [{ path: "path", message: "invalid percent-encoding" }]);
  }
  const problem = workspacePathProblem(path, workspacePathMaxBytes(t.team, t.sid, t.tid));
  if (problem) throw new ApiError("validation", `Invalid workspace path: ${problem}.`, [{ path: "path", message: problem }]);
  return path;
}

function present(path: string, o: R2Object): WorkspaceFile {
  return { path, size: o.size, etag: o.httpEtag, uploaded: o.uploaded.toISOString(), content_type: o.httpMetadata?.contentType ?? null };
}

/** Applies a workspace.sync to the topic hub (its stream and state), then refreshes the index. */
async function announce(c: Context<AppEnv>, t: Topic, files: Array<{ path: string; size: number; etag?: string; deleted?: boolean }>) {
  const hub = topicHub(c.env, t.team, t.sid, t.tid);
  const report = await hub.apply({ id: t.tid, session_id: t.sid, team_id: t.team }, [
    { id: `workspace:${crypto.randomUUID()}`, type: "workspace.sync", session_id: t.sid, topic_id: t.tid, occurred_at: new Date().toISOString(), data: { files } },
  ]);
  await indexTopic(dbOf(c.env), t.team, t.sid, report.summary, report.version);
}

// Registered before the file routes: Hono's `/*` also matches the bare folder path.
const listQuery = z.object({ prefix: z.string().max(1024).optional(), cursor: z.string().max(2000).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) });
workspaceRoutes.get(BASE, requireScope("read"), async (c) => {
  const t = await topicOf(c);
  const q = listQuery.safeParse(c.req.query());
  if (!q.success) throw new ApiError("validation", "The query is not valid.", q.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })));
  // The same budget as a path: a longer prefix could match no key, and R2 may refuse it.
  const tooLong = workspaceLengthProblem(q.data.prefix ?? "", workspacePathMaxBytes(t.team, t.sid, t.tid));
  if (tooLong) throw new ApiError("validation", `The prefix is ${tooLong}.`, [{ path: "prefix", message: `the prefix is ${tooLong}` }]);
  const base = workspaceKey(t.team, t.sid, t.tid);
  const prefix = q.data.prefix ?? "";
  // R2's cursor travels wrapped, with the listing it continues: not every R2 refuses a cursor
  // it never gave (the local one lists from the start), and one from another listing of ours
  // would page through the wrong prefix. Anything else is 400, as on every other list.
  const r2Cursor = fromListCursor(q.data.cursor, prefix, t);
  let listed: R2Objects;
  try {
    listed = await c.env.BUCKET.list({ prefix: base + prefix, cursor: r2Cursor, limit: q.data.limit, include: ["httpMetadata"] });
  } catch {
    throw new ApiError("validation", "The cursor is not one this API gave out.", [{ path: "cursor", message: "invalid cursor" }]);
  }
  const next = listed.truncated ? encodeCursor(["workspace", t.sid, t.tid, prefix, listed.cursor]) : null;
  return c.json({ items: listed.objects.map((o) => present(o.key.slice(base.length), o)), next_cursor: next }, 200);
});

workspaceRoutes.put(`${BASE}/*`, requireScope("agent"), async (c) => {
  const t = await topicOf(c);
  const path = filePath(c, t);
  const length = c.req.header("Content-Length");
  if (length === undefined || !/^\d+$/.test(length)) throw new ApiError("length_required", "Send Content-Length: R2 stores a streamed body only when its length is known.");
  if (Number(length) > WORKSPACE_MAX_BYTES) throw new ApiError("too_large", `A workspace file is at most ${WORKSPACE_MAX_BYTES} bytes.`);
  const key = workspaceKey(t.team, t.sid, t.tid, path);
  const before = await c.env.BUCKET.head(key);
  const existed = before !== null;
  const requestId = c.get("requestId") ?? "";
  const refused = () => workspaceProblem(412, "A precondition (If-Match, If-None-Match or If-Unmodified-Since) does not hold for the current file; nothing was written.", requestId);
  if (!writePreconditionsHold(c.req.raw.headers, before ? { etag: before.httpEtag, uploaded: before.uploaded } : null)) {
    return refused();
  }
  const onlyIf = writeConditions(c.req.raw.headers);
  const object = await putAtDeclaredLength(c.env.BUCKET, key, c.req.raw.body, Number(length), {
    httpMetadata: { contentType: c.req.header("Content-Type") ?? "application/octet-stream" },
    ...(onlyIf ? { onlyIf } : {}),
  });
  // R2 checked the conditions again as it wrote: the file changed since it was read.
  if (!object) return refused();
  const file = present(path, object);
  // The row follows what R2 holds after the put, not the put itself (src/db/workspace.ts).
  await settleFile(c.env, { team: t.team, sid: t.sid, tid: t.tid, path }, file.uploaded);
  await announce(c, t, [{ path, size: file.size, etag: file.etag }]);
  return c.json(file, existed ? 200 : 201, { ETag: file.etag });
});

// Conditional and range requests are decided in src/lib/workspace-http.ts (RFC 9110), not
// by R2: see there why. Without either, one plain `get`.
const CONDITIONAL = ["If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"];
workspaceRoutes.get(`${BASE}/*`, requireScope("read"), async (c) => {
  const t = await topicOf(c);
  const path = filePath(c, t);
  const key = workspaceKey(t.team, t.sid, t.tid, path);
  const headers = c.req.raw.headers;
  const spec = parseRange(headers.get("Range"));
  const requestId = c.get("requestId") ?? "";
  const validators = (o: R2Object) => {
    const out = new Headers({ ETag: o.httpEtag, "Last-Modified": o.uploaded.toUTCString(), "Accept-Ranges": "bytes" });
    if (o.httpMetadata?.cacheControl) out.set("Cache-Control", o.httpMetadata.cacheControl);
    return out;
  };

  if (!spec && !CONDITIONAL.some((h) => headers.has(h))) {
    const object = await c.env.BUCKET.get(key);
    if (!object) throw new ApiError("not_found", `No file ${path}.`);
    return whole(object);
  }

  // Decide on the metadata, then read that same version (etagMatches): if the file is
  // replaced in between, R2 gives no body and we decide again on the new version.
  for (let attempt = 0; attempt < 3; attempt++) {
    const meta = await c.env.BUCKET.head(key);
    if (!meta) throw new ApiError("not_found", `No file ${path}.`);
    const current = { etag: meta.httpEtag, uploaded: meta.uploaded };
    const outcome = evaluatePreconditions(headers, current);
    if (outcome === "failed") {
      return workspaceProblem(412, "A precondition (If-Match or If-Unmodified-Since) does not hold for the current file.", requestId, Object.fromEntries(validators(meta)));
    }
    // 304 carries the validators, not the representation's other metadata (§15.4.5).
    if (outcome === "not_modified") return new Response(null, { status: 304, headers: validators(meta) });
    const range = spec && ifRangeHolds(headers, current) ? resolveRange(spec, meta.size) : null;
    if (range === "unsatisfiable") {
      return workspaceProblem(416, `The range is outside the file's ${meta.size} bytes.`, requestId, { ...Object.fromEntries(validators(meta)), "Content-Range": `bytes */${meta.size}` });
    }
    const object = await c.env.BUCKET.get(key, { onlyIf: { etagMatches: meta.etag }, ...(range ? { range } : {}) });
    if (!object) throw new ApiError("not_found", `No file ${path}.`);
    if (!("body" in object)) continue; // replaced since the head
    if (!range) return whole(object);
    const out = contentHeaders(object);
    out.set("Content-Range", `bytes ${range.offset}-${range.offset + range.length - 1}/${object.size}`);
    out.set("Content-Length", String(range.length));
    return new Response(object.body, { status: 206, headers: out });
  }
  throw new ApiError("unavailable", `The file ${path} kept changing while it was read; try again.`, [], { "Retry-After": "1" });

  /** The validators, the uploader's metadata, then what keeps the file inert (after, so it wins). */
  function contentHeaders(object: R2ObjectBody) {
    const out = validators(object);
    object.writeHttpMetadata(out);
    for (const [name, value] of Object.entries(inertFileHeaders(path))) out.set(name, value);
    return out;
  }

  function whole(object: R2ObjectBody) {
    const out = contentHeaders(object);
    out.set("Content-Length", String(object.size));
    return new Response(object.body, { status: 200, headers: out });
  }
});

workspaceRoutes.delete(`${BASE}/*`, requireScope("agent"), async (c) => {
  const t = await topicOf(c);
  const path = filePath(c, t);
  const key = workspaceKey(t.team, t.sid, t.tid, path);
  const before = await c.env.BUCKET.head(key);
  if (!before) throw new ApiError("not_found", `No file ${path}.`);
  // R2's delete takes no conditions, so they are checked on the version just read: a write
  // landing between this read and the delete is not seen (PUT is checked by R2 itself).
  if (!writePreconditionsHold(c.req.raw.headers, { etag: before.httpEtag, uploaded: before.uploaded })) {
    return workspaceProblem(412, "A precondition (If-Match, If-None-Match or If-Unmodified-Since) does not hold for the current file; nothing was deleted.", c.get("requestId") ?? "");
  }
  await c.env.BUCKET.delete(key);
  // The version seen before the delete is gone; the row follows what R2 holds now.
  await settleFile(c.env, { team: t.team, sid: t.sid, tid: t.tid, path }, before.uploaded.toISOString());
  await announce(c, t, [{ path, size: 0, deleted: true }]);
  return c.body(null, 204);
});

/**
 * Per-team storage accounting: the sum of the team's `workspace_files` rows. A write keeps its
 * row in step with R2 (settleFile); the every-minute reconciliation
 * (src/cron/workspace-usage.ts) repairs what a race or a failure left, so usage converges.
 */
workspaceRoutes.use("/v1/usage", authenticate, requireScope("read"));
workspaceRoutes.get("/v1/usage", async (c) => {
  const row = await dbOf(c.env)
    .select({ bytes: sql<number>`coalesce(sum(${workspaceFiles.size}), 0)`, objects: sql<number>`count(*)` })
    .from(workspaceFiles)
    .where(eq(workspaceFiles.teamId, c.get("auth").team_id))
    .get();
  return c.json({ workspace: { bytes: row?.bytes ?? 0, objects: row?.objects ?? 0 } }, 200);
});

// Documented in /openapi.json; served by the plain routes above (a wildcard path and raw bodies).
const wsParams = z.object({ sid: clientId, tid: clientId, path: z.string().describe("file path, may contain /") });
for (const [method, summary, responses] of [
  ["put", "Store a file (any content type, Content-Length required, ≤ 100 MB); announces workspace.sync", { 200: { description: "Replaced" }, 201: { description: "Created" }, 411: { description: "No Content-Length" }, 412: { description: "If-Match, If-None-Match or If-Unmodified-Since does not hold (nothing written)" }, 413: { description: "Over 100 MB" }, 503: { description: "Storage did not take the file (nothing written; Retry-After)" } }],
  [
    "get",
    "Read a file; honours If-None-Match / If-Modified-Since (304), If-Match / If-Unmodified-Since (412), Range with one byte range (206; unsatisfiable: 416; another unit, several ranges or a stale If-Range: the whole file)",
    { 200: { description: "The file" }, 206: { description: "A range" }, 304: { description: "Not modified" }, 412: { description: "Precondition failed" }, 416: { description: "Range not satisfiable" } },
  ],
  ["delete", "Delete a file; announces workspace.sync", { 204: { description: "Deleted" }, 412: { description: "If-Match, If-None-Match or If-Unmodified-Since does not hold (nothing deleted)" } }],
] as const) {
  workspaceRoutes.openAPIRegistry.registerPath(createRoute({ method, path: "/v1/sessions/{sid}/topics/{tid}/workspace/{path}", summary, security, request: { params: wsParams }, responses: { ...responses, ...problemResponses } }));
}
workspaceRoutes.openAPIRegistry.registerPath(
  createRoute({
    method: "get",
    path: "/v1/sessions/{sid}/topics/{tid}/workspace",
    summary: "List a topic's files (?prefix=, ?cursor=, ?limit=)",
    security,
    request: { params: z.object({ sid: clientId, tid: clientId }), query: listQuery },
    responses: { 200: { description: "Files", content: { "application/json": { schema: z.object({ items: z.array(workspaceFileSchema), next_cursor: z.string().nullable() }) } } }, ...problemResponses },
  }),
);
workspaceRoutes.openAPIRegistry.registerPath(
  createRoute({ method: "get", path: "/v1/usage", summary: "The team's storage: workspace bytes and objects", security, responses: { 200: { description: "Usage" }, ...problemResponses } }),
);

/** The R2 cursor a list cursor of ours carries, when it continues this very listing; 400 otherwise. */
function fromListCursor(cursor: string | undefined, prefix: string, t: { sid: string; tid: string }): string | undefined {
  if (cursor === undefined) return undefined;
  const [kind, sid, tid, was, r2] = decodeCursor(cursor, 5) ?? [];
  if (kind !== "workspace" || sid !== t.sid || tid !== t.tid || was !== prefix || typeof r2 !== "string") {
    throw new ApiError("validation", "The cursor is not one this API gave out for this listing (the same topic and prefix).", [{ path: "cursor", message: "invalid cursor" }]);
  }
  return r2;
}
