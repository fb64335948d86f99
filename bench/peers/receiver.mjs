#!/usr/bin/env node
// The peer's receiver, in the seed system's architecture: each callback's events are written
// to PostgreSQL (one transaction per event) and published on Redis pub/sub, then the callback
// is answered 202 — so "accepted" means committed, which is stronger than Switchboard's 202
// (enqueued). It also serves the API the bench uses to set up (teams, sessions, topics) and
// to read a topic's counters. The SSE servers (sse-server.mjs) are separate processes.
//
// Env: PORT, ADMIN_TOKEN, DATABASE_URL, REDIS_URL, PG_POOL (connections, default 16).
import http from "node:http";
import Redis from "ioredis";
import pg from "pg";
import {
  HttpError,
  bearer,
  channelOf,
  clientId,
  hashKey,
  newId,
  newKey,
  parseCallbackBody,
  readJson,
  sendJson,
  sendProblem,
  stopOnSigterm,
  topicSummary,
  usageOf,
} from "./common.mjs";

const { PORT = "0", ADMIN_TOKEN, DATABASE_URL, REDIS_URL } = process.env;
const db = new pg.Pool({ connectionString: DATABASE_URL, max: Number(process.env.PG_POOL ?? 16) });
db.on("error", (e) => console.error(`pg pool: ${e.message}`));
const redis = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 3 });
redis.on("error", (e) => console.error(`redis: ${e.message}`));

// Keys and sessions never change once made, so the lookups are cached in memory (a deleted
// key would need invalidation; the bench deletes none).
const teamByKeyHash = new Map();
async function auth(req) {
  const key = bearer(req);
  if (!key) throw new HttpError(401, "Unauthorized", "A valid API key is required.");
  const hash = hashKey(key);
  let team = teamByKeyHash.get(hash);
  if (!team) {
    team = (await db.query("SELECT team_id FROM api_keys WHERE hash = $1", [hash])).rows[0]?.team_id;
    if (!team) throw new HttpError(401, "Unauthorized", "A valid API key is required.");
    teamByKeyHash.set(hash, team);
  }
  return team;
}
const knownSessions = new Set();
async function sessionExists(team, sid) {
  if (knownSessions.has(`${team}:${sid}`)) return true;
  const found = (await db.query("SELECT 1 FROM sessions WHERE team_id = $1 AND id = $2", [team, sid])).rowCount > 0;
  if (found) knownSessions.add(`${team}:${sid}`);
  return found;
}

async function topicView(team, sid, tid) {
  const { rows } = await db.query(
    `SELECT t.created_at, c.step, c.tool, c.calls FROM topics t LEFT JOIN tool_calls c ON c.team_id = t.team_id AND c.session_id = t.session_id AND c.topic_id = t.id
     WHERE t.team_id = $1 AND t.session_id = $2 AND t.id = $3`,
    [team, sid, tid],
  );
  if (rows.length === 0) return null;
  return topicSummary({ id: tid, session_id: sid, created_at: rows[0].created_at.toISOString(), tools: rows.filter((r) => r.step !== null) });
}

/** Applies events in order: commit, then publish. A duplicate id is neither stored nor sent again. */
async function applyEvents(team, events) {
  for (const e of events) {
    const body = JSON.stringify({ ...e, received_at: new Date().toISOString() });
    const usage = usageOf(e);
    const tools = usage ? Object.entries(Object.groupBy(usage.tools, (t) => t.name)).map(([name, ts]) => ({ name, calls: ts.reduce((n, t) => n + t.calls, 0) })) : null;
    const { rows } = await db.query("SELECT apply_event($1, $2, $3, $4, $5, $6, $7, $8) AS seq", [team, e.session_id, e.topic_id, e.id, e.type, body, usage?.step ?? null, tools ? JSON.stringify(tools) : null]);
    const seq = rows[0].seq;
    if (seq === null) continue;
    // "seq\ntype\nbody": the SSE servers frame it without parsing the envelope.
    await redis.publish(channelOf(team, e.session_id, e.topic_id), `${seq}\n${e.type}\n${body}`);
  }
}

async function handle(req, res) {
  const path = new URL(req.url, "http://x").pathname;
  if (req.method === "GET" && path === "/healthz") return sendJson(res, 200, { ok: true });
  if (req.method === "POST" && path === "/v1/admin/teams") {
    if (bearer(req) !== ADMIN_TOKEN) throw new HttpError(401, "Unauthorized");
    const body = await readJson(req);
    const id = newId("team");
    const key = newKey();
    const client = await db.connect();
    try {
      await client.query("BEGIN");
      await client.query("INSERT INTO teams (id, name) VALUES ($1, $2)", [id, String(body?.name ?? "")]);
      await client.query("INSERT INTO api_keys (hash, team_id) VALUES ($1, $2)", [hashKey(key), id]);
      await client.query("COMMIT");
    } catch (e) {
      await client.query("ROLLBACK").catch(() => {});
      throw e;
    } finally {
      client.release();
    }
    return sendJson(res, 201, { team_id: id, name: String(body?.name ?? ""), api_key: key });
  }
  const team = await auth(req);
  if (req.method === "POST" && path === "/v1/callbacks") {
    const events = parseCallbackBody(await readJson(req));
    for (const sid of new Set(events.map((e) => e.session_id))) if (!(await sessionExists(team, sid))) throw new HttpError(404, "Not found", `No session ${sid}.`);
    await applyEvents(team, events);
    return sendJson(res, 202, { accepted: events.length, request_id: newId("req") });
  }
  if (req.method === "POST" && path === "/v1/sessions") {
    const body = await readJson(req);
    const id = clientId(body?.id, "id") ?? newId("s");
    const { rows } = await db.query("INSERT INTO sessions (team_id, id, title, metadata) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING created_at", [team, id, body?.title ?? null, JSON.stringify(body?.metadata ?? {})]);
    if (rows.length === 0) throw new HttpError(409, "Conflict", `Session ${id} exists.`);
    const at = rows[0].created_at.toISOString();
    return sendJson(res, 201, { id, status: "created", title: body?.title ?? null, metadata: body?.metadata ?? {}, created_at: at, updated_at: at, rejected_events: [], topics: [] });
  }
  let m = /^\/v1\/sessions\/([^/]+)\/topics$/.exec(path);
  if (req.method === "POST" && m) {
    const sid = m[1];
    if (!(await sessionExists(team, sid))) throw new HttpError(404, "Not found", `No session ${sid}.`);
    const body = await readJson(req);
    const tid = clientId(body?.id, "id") ?? newId("t");
    const { rowCount } = await db.query("INSERT INTO topics (team_id, session_id, id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", [team, sid, tid]);
    if (rowCount === 0) throw new HttpError(409, "Conflict", `Topic ${tid} exists.`);
    return sendJson(res, 201, await topicView(team, sid, tid));
  }
  m = /^\/v1\/sessions\/([^/]+)\/topics\/([^/]+)$/.exec(path);
  if (req.method === "GET" && m) {
    const view = await topicView(team, m[1], m[2]);
    if (!view) throw new HttpError(404, "Not found", `No topic ${m[2]} in session ${m[1]}.`);
    return sendJson(res, 200, view);
  }
  throw new HttpError(404, "Not found");
}

const server = http.createServer((req, res) => handle(req, res).catch((e) => sendProblem(res, e)));
server.keepAliveTimeout = 65_000;
await redis.ping();
server.listen(Number(PORT), "127.0.0.1", () => console.log(`peer receiver listening on 127.0.0.1:${server.address().port}`));
stopOnSigterm(server, { cleanup: async () => Promise.all([db.end(), redis.quit()]) });
