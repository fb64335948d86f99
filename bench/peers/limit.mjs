#!/usr/bin/env node
// The limit: one Node process that accepts a callback and broadcasts it from memory, with no
// queue, no database and no durability. It bounds what any design can do on this machine
// with the same load generator, HTTP and SSE framing.
//
// Teams, keys, sessions and topics are written to STATE_FILE when created (rare), so a
// restart keeps the bench's setup; events, sequence numbers and counters live in memory
// only, so a restart loses them: a stream that comes back with a Last-Event-ID beyond the
// new sequence gets `event: reset` and a fresh snapshot, as Switchboard answers such an id.
//
// Env: PORT, ADMIN_TOKEN, STATE_FILE, STREAM_HISTORY (events kept for replay, default 1,000
// like Switchboard's hubs).
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import http from "node:http";
import {
  HttpError,
  RETRY_MS,
  SSE_HEADERS,
  TOPIC_STREAM,
  bearer,
  clientId,
  hashKey,
  lastEventId,
  newId,
  newKey,
  parseCallbackBody,
  readJson,
  sendJson,
  sendProblem,
  sseEvent,
  sseRetry,
  stopOnSigterm,
  topicSummary,
  usageOf,
} from "./common.mjs";
import { TopicFanout } from "./fanout.mjs";

const { PORT = "0", ADMIN_TOKEN, STATE_FILE } = process.env;
const HISTORY = Number(process.env.STREAM_HISTORY ?? 1000);

// Durable setup: {teams: {id: {name}}, keys: {hash: team}, sessions: {team:sid: {...}}, topics: {team:sid:tid: {...}}}
const setup = STATE_FILE && existsSync(STATE_FILE) ? JSON.parse(readFileSync(STATE_FILE, "utf8")) : { teams: {}, keys: {}, sessions: {}, topics: {} };
function saveSetup() {
  if (!STATE_FILE) return;
  writeFileSync(`${STATE_FILE}.tmp`, JSON.stringify(setup));
  renameSync(`${STATE_FILE}.tmp`, STATE_FILE);
}

// Volatile: per topic key, the fan-out (with the replay history), tool calls, applied ids.
const live = new Map();
function liveTopic(key) {
  let t = live.get(key);
  if (!t) {
    t = { fanout: new TopicFanout({ keep: HISTORY }), seq: 0, tools: new Map(), applied: new Set() };
    live.set(key, t);
  }
  return t;
}
const summaryOf = (key) => {
  const meta = setup.topics[key];
  const t = liveTopic(key);
  return topicSummary({ ...meta, tools: [...t.tools].map(([k, calls]) => ({ step: k.split("\0")[0], tool: k.split("\0")[1], calls })) });
};

function auth(req) {
  const key = bearer(req);
  const team = key ? setup.keys[hashKey(key)] : undefined;
  if (!team) throw new HttpError(401, "Unauthorized", "A valid API key is required.");
  return team;
}

function apply(team, events) {
  for (const e of events) {
    const key = `${team}:${e.session_id}:${e.topic_id}`;
    if (!setup.topics[key]) {
      // A topic is created by its first event, as a TopicHub is.
      setup.topics[key] = { id: e.topic_id, session_id: e.session_id, created_at: new Date().toISOString() };
      saveSetup();
    }
    const t = liveTopic(key);
    if (t.applied.has(e.id)) continue; // exactly once per event id, while the process lives
    t.applied.add(e.id);
    const usage = usageOf(e);
    if (usage) for (const tool of usage.tools) t.tools.set(`${usage.step}\0${tool.name}`, (t.tools.get(`${usage.step}\0${tool.name}`) ?? 0) + tool.calls);
    t.seq += 1;
    const body = JSON.stringify({ ...e, received_at: new Date().toISOString() });
    t.fanout.emit(t.seq, sseEvent({ id: t.seq, event: e.type, data: body }));
  }
}

function stream(req, res, team, sid, tid) {
  const key = `${team}:${sid}:${tid}`;
  if (!setup.topics[key]) throw new HttpError(404, "Not found", `No topic ${tid} in session ${sid}.`);
  const t = liveTopic(key);
  const last = lastEventId(req);
  const parts = [sseRetry(RETRY_MS)];
  let cursor = t.seq;
  const replay = typeof last === "number" ? t.fanout.since(last) : null;
  if (replay !== null && last <= t.seq) {
    cursor = last; // attach sends the replay from memory
  } else {
    if (last !== null) parts.push(sseEvent({ event: "reset", data: { reason: last === "invalid" ? "invalid" : last > t.seq ? "ahead" : "expired", last_event_id: last === "invalid" ? null : last, current: t.seq } }));
    parts.push(sseEvent({ id: t.seq, event: "snapshot", data: summaryOf(key) }));
  }
  res.writeHead(200, SSE_HEADERS);
  t.fanout.attach(res, Buffer.concat(parts), cursor);
}

const server = http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, "http://x").pathname;
    if (req.method === "GET" && path === "/healthz") return sendJson(res, 200, { ok: true });
    if (req.method === "POST" && path === "/v1/admin/teams") {
      if (bearer(req) !== ADMIN_TOKEN) throw new HttpError(401, "Unauthorized");
      const body = await readJson(req);
      const id = newId("team");
      const key = newKey();
      setup.teams[id] = { name: String(body?.name ?? "") };
      setup.keys[hashKey(key)] = id;
      saveSetup();
      return sendJson(res, 201, { team_id: id, name: setup.teams[id].name, api_key: key });
    }
    const team = auth(req);
    if (req.method === "POST" && path === "/v1/callbacks") {
      const events = parseCallbackBody(await readJson(req));
      const missing = [...new Set(events.map((e) => e.session_id))].filter((s) => !setup.sessions[`${team}:${s}`]);
      if (missing.length) throw new HttpError(404, "Not found", `No session ${missing.join(", ")}.`);
      apply(team, events);
      return sendJson(res, 202, { accepted: events.length, request_id: newId("req") });
    }
    if (req.method === "POST" && path === "/v1/sessions") {
      const body = await readJson(req);
      const id = clientId(body?.id, "id") ?? newId("s");
      if (setup.sessions[`${team}:${id}`]) throw new HttpError(409, "Conflict", `Session ${id} exists.`);
      const now = new Date().toISOString();
      setup.sessions[`${team}:${id}`] = { id, status: "created", title: body?.title ?? null, metadata: body?.metadata ?? {}, created_at: now, updated_at: now };
      saveSetup();
      return sendJson(res, 201, { ...setup.sessions[`${team}:${id}`], rejected_events: [], topics: [] });
    }
    let m = /^\/v1\/sessions\/([^/]+)\/topics$/.exec(path);
    if (req.method === "POST" && m) {
      const sid = m[1];
      if (!setup.sessions[`${team}:${sid}`]) throw new HttpError(404, "Not found", `No session ${sid}.`);
      const body = await readJson(req);
      const tid = clientId(body?.id, "id") ?? newId("t");
      const key = `${team}:${sid}:${tid}`;
      if (setup.topics[key]) throw new HttpError(409, "Conflict", `Topic ${tid} exists.`);
      setup.topics[key] = { id: tid, session_id: sid, created_at: new Date().toISOString() };
      saveSetup();
      return sendJson(res, 201, summaryOf(key));
    }
    m = /^\/v1\/sessions\/([^/]+)\/topics\/([^/]+)$/.exec(path);
    if (req.method === "GET" && m) {
      const key = `${team}:${m[1]}:${m[2]}`;
      if (!setup.topics[key]) throw new HttpError(404, "Not found", `No topic ${m[2]} in session ${m[1]}.`);
      return sendJson(res, 200, summaryOf(key));
    }
    m = TOPIC_STREAM.exec(path);
    if (req.method === "GET" && m) return stream(req, res, team, m[1] ?? m[3], m[2] ?? m[4]);
    throw new HttpError(404, "Not found");
  } catch (e) {
    sendProblem(res, e);
  }
});
server.keepAliveTimeout = 65_000;
server.listen(Number(PORT), "127.0.0.1", () => console.log(`limit listening on 127.0.0.1:${server.address().port}`));
stopOnSigterm(server, { endStreams: () => live.forEach((t) => t.fanout.endAll()) });
