import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, desc, eq, gt, lt, or } from "drizzle-orm";
import type { SessionSummary } from "../../durable-objects/session-hub";
import { dbOf } from "../db/client";
import { countSessionTopics, indexTopic, sessionTopicRows, topicListItem, upsertSessionRow } from "../db/index-rows";
import { alphas, sessions, topics } from "../db/schema";
import { platformTopicAdded } from "../domain/events";
import { jsonSchema } from "../domain/json";
import { SESSION_STATUSES } from "../domain/session";
import { STEPS } from "../domain/steps";
import type { AppEnv } from "../lib/app-env";
import { authenticate, requireScope } from "../lib/auth";
import { ApiError } from "../lib/errors";
import { sessionHub, topicHub } from "../lib/hubs";
import { clientId } from "../lib/ids";
import { json, newRouter, problemResponses, security } from "../lib/openapi";
import { decodeCursor, listQuery, listSchema, page } from "../lib/pagination";
import { alphaListItemSchema, sessionListItemSchema, sessionSchema, topicListItemSchema, topicSchema } from "./schemas";
import type { Context } from "hono";

export const sessionRoutes = newRouter();

sessionRoutes.use("/v1/sessions", authenticate);
sessionRoutes.use("/v1/sessions/*", authenticate);

const sid = z.object({ sid: clientId });
const sidTid = z.object({ sid: clientId, tid: clientId });

/** 404 unless the team has the session (by its index row: the lists read the index). */
async function requireIndexedSession(db: ReturnType<typeof dbOf>, team: string, sessionId: string): Promise<void> {
  const exists = await db.select({ id: sessions.id }).from(sessions).where(and(eq(sessions.teamId, team), eq(sessions.id, sessionId))).get();
  if (!exists) throw new ApiError("not_found", `No session ${sessionId}.`);
}

/**
 * How many topics a session's summary shows in full: one Durable Object call each, and a
 * callback may add topics without end, so the summary's fan-out is bounded; the rest are
 * listed by `GET /v1/sessions/{sid}/topics` and read one by one.
 */
export const SUMMARY_TOPICS = 100;

/** The summary shape of shared/DESIGN.md: the session hub's state plus each topic hub's (the first SUMMARY_TOPICS). */
async function loadSession(c: Context<AppEnv>, sessionId: string) {
  const team = c.get("auth").team_id;
  const found = await sessionHub(c.env, team, sessionId).summary();
  if (!found) throw new ApiError("not_found", `No session ${sessionId}.`);
  const db = dbOf(c.env);
  const [topicIds, [count]] = await db.batch([sessionTopicRows(db, team, sessionId, SUMMARY_TOPICS, null), countSessionTopics(db, team, sessionId)]);
  const topicSummaries = await Promise.all(topicIds.map((t) => topicHub(c.env, team, sessionId, t.id).summary()));
  const s = found.summary;
  return { ...s, topics: topicSummaries.flatMap((t) => (t ? [t.summary] : [])), topics_total: count?.n ?? topicIds.length };
}

sessionRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/sessions",
    summary: "Create a research session",
    security,
    middleware: [requireScope("agent")] as const,
    request: { body: { required: false, ...json(z.object({ id: clientId.optional(), title: z.string().max(500).optional(), metadata: z.record(z.string(), jsonSchema).optional() })) } },
    responses: { 201: { description: "Created", ...json(sessionSchema) }, 409: { description: "The id is taken" }, ...problemResponses },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const team = c.get("auth").team_id;
    const id = body.id ?? crypto.randomUUID();
    const db = dbOf(c.env);
    const now = new Date().toISOString();
    // The index row claims the id first (primary key), so two creates cannot both win.
    const claimed = await db
      .insert(sessions)
      .values({ teamId: team, id, status: "created", title: body.title ?? null, metadata: body.metadata ?? {}, createdAt: now, updatedAt: now, version: 0 })
      .onConflictDoNothing()
      .returning({ id: sessions.id })
      .all();
    const hub = sessionHub(c.env, team, id);
    let createdAt = now;
    if (claimed.length === 0) {
      // The id's row exists. A create whose hub call failed after the row was written left a
      // row and no session (GET answers 404): a retry completes that creation, as the first
      // try would have, rather than find the id taken for good. A session its hub has is 409,
      // below (create changes nothing then).
      const row = await db.select({ createdAt: sessions.createdAt }).from(sessions).where(and(eq(sessions.teamId, team), eq(sessions.id, id))).get();
      createdAt = row?.createdAt ?? now; // the row keeps its created_at (the upsert does not change it)
    }
    const created = await hub.create({ id, team_id: team, title: body.title ?? null, metadata: body.metadata ?? {}, created_at: createdAt });
    // The session exists (or another retry of the orphaned create got to the hub first).
    if (!created.created) throw new ApiError("conflict", `Session ${id} already exists.`);
    await upsertSessionRow(db, team, created.summary, created.version);
    return c.json({ ...(created.summary), topics: [], topics_total: 0 }, 201);
  },
);

sessionRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/sessions",
    summary: "The team's sessions, newest first",
    security,
    middleware: [requireScope("read")] as const,
    request: { query: listQuery.extend({ status: z.enum(SESSION_STATUSES).optional() }) },
    responses: { 200: { description: "Sessions", ...json(listSchema(sessionListItemSchema)) }, ...problemResponses },
  }),
  async (c) => {
    const { limit, cursor, status } = c.req.valid("query");
    const after = decodeCursor(cursor, 2) as [string, string] | null;
    const team = c.get("auth").team_id;
    const rows = await dbOf(c.env)
      .select()
      .from(sessions)
      .where(
        and(
          eq(sessions.teamId, team),
          status ? eq(sessions.status, status) : undefined,
          after ? or(lt(sessions.createdAt, after[0]), and(eq(sessions.createdAt, after[0]), lt(sessions.id, after[1]))) : undefined,
        ),
      )
      .orderBy(desc(sessions.createdAt), desc(sessions.id))
      .limit(limit + 1)
      .all();
    const items = rows.map((r) => ({ id: r.id, status: r.status, title: r.title, metadata: r.metadata, created_at: r.createdAt, updated_at: r.updatedAt }));
    return c.json(page(items, limit, (s) => [s.created_at, s.id]), 200);
  },
);

sessionRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/sessions/{sid}",
    summary: "A session's summary: status, rejected events, topics with per-step turns, budget, cost and duration",
    security,
    middleware: [requireScope("read")] as const,
    request: { params: sid },
    responses: { 200: { description: "Summary", ...json(sessionSchema) }, ...problemResponses },
  }),
  async (c) => c.json(await loadSession(c, c.req.valid("param").sid), 200),
);

sessionRoutes.openapi(
  createRoute({
    method: "patch",
    path: "/v1/sessions/{sid}",
    summary: "End (or start) a session by hand; a terminal session answers 409",
    security,
    middleware: [requireScope("operator")] as const,
    request: { params: sid, body: { required: true, ...json(z.object({ status: z.enum(SESSION_STATUSES), reason: z.string().max(10_000).optional() })) } },
    responses: { 200: { description: "Summary", ...json(sessionSchema) }, 409: { description: "Forbidden state change" }, ...problemResponses },
  }),
  async (c) => {
    const { sid: sessionId } = c.req.valid("param");
    const body = c.req.valid("json");
    const team = c.get("auth").team_id;
    const hub = sessionHub(c.env, team, sessionId);
    // Applied as an event, so watchers see it on the stream like an agent's update. A refused
    // change changes nothing: the hub checks it against the state machine before applying it,
    // in one turn, because it records every event it refuses in the session's rejected_events
    // (an agent's must stay visible; an operator's 409 must not).
    const report = await hub.applyOperatorStatus(
      { id: `operator:${crypto.randomUUID()}`, type: "update_status", session_id: sessionId, occurred_at: new Date().toISOString(), data: { status: body.status, ...(body.reason ? { reason: body.reason } : {}) } },
      body.status,
    );
    if ("refused" in report) throw report.refused === "not_found" ? new ApiError("not_found", `No session ${sessionId}.`) : new ApiError("conflict", report.refused);
    const result = report.results[0];
    if (result?.status === "rejected") throw new ApiError("conflict", result.reason);
    await upsertSessionRow(dbOf(c.env), team, report.summary, report.version);
    return c.json(await loadSession(c, sessionId), 200);
  },
);

const maxTurnsSchema = z
  .object(Object.fromEntries(STEPS.map((s) => [s, z.number().int().positive().max(10_000).optional()])) as Record<(typeof STEPS)[number], z.ZodOptional<z.ZodNumber>>)
  .strict();

sessionRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/sessions/{sid}/topics",
    summary: "Add a topic to a session (also announced as topic_added on the session stream)",
    security,
    middleware: [requireScope("agent")] as const,
    request: { params: sid, body: { required: false, ...json(z.object({ id: clientId.optional(), hypothesis: z.string().max(10_000).optional(), max_turns: maxTurnsSchema.optional() })) } },
    responses: { 201: { description: "Created", ...json(topicSchema) }, 409: { description: "The id is taken" }, ...problemResponses },
  }),
  async (c) => {
    const { sid: sessionId } = c.req.valid("param");
    const body = c.req.valid("json");
    const team = c.get("auth").team_id;
    const db = dbOf(c.env);
    const session = await sessionHub(c.env, team, sessionId).summary();
    if (!session) throw new ApiError("not_found", `No session ${sessionId}.`);
    const id = body.id ?? crypto.randomUUID();
    const now = new Date().toISOString();
    const claimed = await db
      .insert(topics)
      .values({ teamId: team, sessionId, id, status: "created", currentStep: null, hypothesis: body.hypothesis ?? null, createdAt: now, updatedAt: now, version: 0 })
      .onConflictDoNothing()
      .returning({ id: topics.id })
      .all();
    const hub = topicHub(c.env, team, sessionId, id);
    let createdAt = now;
    if (claimed.length === 0) {
      // The id's row exists. A create whose hub call failed after the row was written left a
      // row and no topic (GET answers 404): a retry completes that creation (hub, index,
      // announcement) as the first try would have. A topic its hub has is 409, below.
      const row = await db
        .select({ createdAt: topics.createdAt })
        .from(topics)
        .where(and(eq(topics.teamId, team), eq(topics.sessionId, sessionId), eq(topics.id, id)))
        .get();
      createdAt = row?.createdAt ?? now; // the row keeps its created_at (the upsert does not change it)
    }
    const created = await hub.ensure({ id, session_id: sessionId, team_id: team, hypothesis: body.hypothesis ?? null, max_turns: body.max_turns, created_at: createdAt }, { onlyIfNew: true });
    // Index, then announce, whether or not this request created the topic: both are
    // idempotent (a versioned upsert; the session hub announces a topic once, by the event's
    // id), and a topic whose first create or first event stopped after its hub call is then
    // indexed and announced all the same, the row always before the announcement.
    await indexTopic(db, team, sessionId, created.summary, created.version);
    await sessionHub(c.env, team, sessionId).apply([platformTopicAdded(sessionId, id, created.summary.created_at, created.summary.hypothesis ?? undefined)], new Map([[id, created.summary.hypothesis ?? null]]));
    // Another create, or an agent's event, made the topic first: the id is taken, and this
    // body changed nothing (onlyIfNew: not even a hypothesis the topic lacked).
    if (!created.created) throw new ApiError("conflict", `Topic ${id} already exists in session ${sessionId}.`);
    return c.json(created.summary, 201);
  },
);

sessionRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/sessions/{sid}/topics",
    summary: "A session's topics (status and current step, from the index), oldest first",
    description: "Every topic, however many: the session's summary shows the first 100 in full. `GET /v1/sessions/{sid}/topics/{tid}` has one topic's steps and alphas.",
    security,
    middleware: [requireScope("read")] as const,
    request: { params: sid, query: listQuery },
    responses: { 200: { description: "Topics", ...json(listSchema(topicListItemSchema)) }, ...problemResponses },
  }),
  async (c) => {
    const { sid: sessionId } = c.req.valid("param");
    const { limit, cursor } = c.req.valid("query");
    const team = c.get("auth").team_id;
    const db = dbOf(c.env);
    await requireIndexedSession(db, team, sessionId);
    const after = decodeCursor(cursor, 2) as [string, string] | null;
    const rows = await sessionTopicRows(db, team, sessionId, limit + 1, after).all();
    const items = rows.map(topicListItem);
    return c.json(page(items, limit, (t) => [t.created_at, t.id]), 200);
  },
);

sessionRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/sessions/{sid}/topics/{tid}",
    summary: "A topic: status, current step, per-step records, alphas",
    security,
    middleware: [requireScope("read")] as const,
    request: { params: sidTid },
    responses: { 200: { description: "Topic", ...json(topicSchema) }, ...problemResponses },
  }),
  async (c) => {
    const { sid: sessionId, tid } = c.req.valid("param");
    const found = await topicHub(c.env, c.get("auth").team_id, sessionId, tid).summary();
    if (!found) throw new ApiError("not_found", `No topic ${tid} in session ${sessionId}.`);
    return c.json(found.summary, 200);
  },
);

sessionRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/sessions/{sid}/alphas",
    summary: "The alphas registered in a session, with their latest evaluation",
    security,
    middleware: [requireScope("read")] as const,
    request: { params: sid, query: listQuery.extend({ passed: z.enum(["true", "false"]).optional() }) },
    responses: { 200: { description: "Alphas", ...json(listSchema(alphaListItemSchema)) }, ...problemResponses },
  }),
  async (c) => {
    const { sid: sessionId } = c.req.valid("param");
    const { limit, cursor, passed } = c.req.valid("query");
    const team = c.get("auth").team_id;
    const db = dbOf(c.env);
    await requireIndexedSession(db, team, sessionId);
    const after = decodeCursor(cursor, 2) as [string, string] | null;
    const rows = await db
      .select()
      .from(alphas)
      .where(
        and(
          eq(alphas.teamId, team),
          eq(alphas.sessionId, sessionId),
          passed ? eq(alphas.passed, passed === "true") : undefined,
          after ? or(gt(alphas.topicId, after[0]), and(eq(alphas.topicId, after[0]), gt(alphas.id, after[1]))) : undefined,
        ),
      )
      .orderBy(asc(alphas.topicId), asc(alphas.id))
      .limit(limit + 1)
      .all();
    const items = rows.map((a) => ({ id: a.id, topic_id: a.topicId, name: a.name, expression: a.expression, metrics: a.metrics, passed: a.passed, registered_at: a.registeredAt, evaluated_at: a.evaluatedAt }));
    return c.json(page(items, limit, (a) => [a.topic_id, a.id]), 200);
  },
);
