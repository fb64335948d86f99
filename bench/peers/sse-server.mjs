#!/usr/bin/env node
// The peer's SSE server, in the seed system's architecture: it subscribes on Redis to each
// topic it streams and fans events out to its clients; a stream that comes back with
// Last-Event-ID is replayed from PostgreSQL, then goes live, with no gap and no duplicate
// (the guarantee Switchboard's hubs give, so the restart test compares like for like).
//
// Redis pub/sub is fire-and-forget and two receivers' publishes may cross, so events are
// put back in sequence order here: an event that arrives ahead of a missing one waits for
// it, and after GAP_MS (a publish lost when a receiver died between commit and publish)
// the missing ones are read from PostgreSQL.
//
// Env: PORT, DATABASE_URL, REDIS_URL, PG_POOL (default 8).
import http from "node:http";
import Redis from "ioredis";
import pg from "pg";
import { HttpError, RETRY_MS, SSE_HEADERS, TOPIC_STREAM, bearer, channelOf, hashKey, lastEventId, sendJson, sendProblem, sseEvent, sseRetry, stopOnSigterm, topicSummary } from "./common.mjs";
import { TopicFanout } from "./fanout.mjs";

const { PORT = "0", DATABASE_URL, REDIS_URL } = process.env;
const GAP_MS = 100;
/** Events kept in memory per topic, only to catch up a stream between its read and going live. */
const KEEP = 10_000;

const db = new pg.Pool({ connectionString: DATABASE_URL, max: Number(process.env.PG_POOL ?? 8) });
db.on("error", (e) => console.error(`pg pool: ${e.message}`));
const redis = new Redis(REDIS_URL);
redis.on("error", (e) => console.error(`redis: ${e.message}`));

const teamByKeyHash = new Map();
async function auth(req) {
  const key = bearer(req);
  const hash = key ? hashKey(key) : null;
  let team = hash && teamByKeyHash.get(hash);
  if (!team && hash) {
    team = (await db.query("SELECT team_id FROM api_keys WHERE hash = $1", [hash])).rows[0]?.team_id;
    if (team) teamByKeyHash.set(hash, team);
  }
  if (!team) throw new HttpError(401, "Unauthorized", "A valid API key is required.");
  return team;
}

class Topic {
  constructor(team, sid, tid) {
    Object.assign(this, { team, sid, tid, channel: channelOf(team, sid, tid) });
    this.fanout = new TopicFanout({ keep: KEEP });
    this.held = new Map(); // seq → {type, body}: arrived ahead of a missing seq
    this.early = []; // messages that arrived before the starting seq was read
    this.started = false;
    this.gapTimer = null;
    this.ready = this.start();
  }

  /** Subscribe first, then read where the topic is: every later commit reaches us. */
  async start() {
    byChannel.set(this.channel, this);
    await redis.subscribe(this.channel);
    const { rows } = await db.query("SELECT last_seq FROM topics WHERE team_id = $1 AND session_id = $2 AND id = $3", [this.team, this.sid, this.tid]);
    if (rows.length === 0) {
      byChannel.delete(this.channel);
      await redis.unsubscribe(this.channel);
      throw new HttpError(404, "Not found", `No topic ${this.tid} in session ${this.sid}.`);
    }
    this.fanout.lastSeq = Number(rows[0].last_seq);
    this.started = true;
    for (const [seq, type, body] of this.early) this.receive(seq, type, body);
    this.early = [];
  }

  receive(seq, type, body) {
    if (!this.started) {
      this.early.push([seq, type, body]);
      return;
    }
    if (seq <= this.fanout.lastSeq || this.held.has(seq)) return;
    this.held.set(seq, { type, body });
    this.drain();
  }

  drain() {
    for (let next = this.fanout.lastSeq + 1; this.held.has(next); next++) {
      const e = this.held.get(next);
      this.held.delete(next);
      this.fanout.emit(next, sseEvent({ id: next, event: e.type, data: e.body }));
    }
    if (this.held.size === 0) {
      clearTimeout(this.gapTimer);
      this.gapTimer = null;
    } else {
      this.gapTimer ??= setTimeout(() => void this.fillGap(), GAP_MS);
    }
  }

  async fillGap() {
    const before = Math.min(...this.held.keys());
    try {
      const { rows } = await db.query("SELECT seq, type, body FROM events WHERE team_id = $1 AND session_id = $2 AND topic_id = $3 AND seq > $4 AND seq < $5 ORDER BY seq", [this.team, this.sid, this.tid, this.fanout.lastSeq, before]);
      for (const r of rows) if (!this.held.has(Number(r.seq))) this.held.set(Number(r.seq), { type: r.type, body: r.body });
    } catch (e) {
      console.error(`gap fill: ${e.message}`);
    }
    this.gapTimer = null;
    this.drain();
  }
}
const topics = new Map();
const byChannel = new Map();
redis.on("message", (channel, message) => {
  const topic = byChannel.get(channel);
  if (!topic) return;
  const a = message.indexOf("\n");
  const b = message.indexOf("\n", a + 1);
  topic.receive(Number(message.slice(0, a)), message.slice(a + 1, b), message.slice(b + 1));
});

async function snapshot(topic) {
  const { rows } = await db.query(
    `SELECT t.last_seq, t.created_at, c.step, c.tool, c.calls FROM topics t LEFT JOIN tool_calls c ON c.team_id = t.team_id AND c.session_id = t.session_id AND c.topic_id = t.id
     WHERE t.team_id = $1 AND t.session_id = $2 AND t.id = $3`,
    [topic.team, topic.sid, topic.tid],
  );
  return { seq: Number(rows[0].last_seq), summary: topicSummary({ id: topic.tid, session_id: topic.sid, created_at: rows[0].created_at.toISOString(), tools: rows.filter((r) => r.step !== null) }) };
}

/** retry, then the replay after Last-Event-ID (or a snapshot), then live events. */
async function stream(req, res, team, sid, tid) {
  const key = `${team}:${sid}:${tid}`;
  let topic = topics.get(key);
  if (!topic) {
    topic = new Topic(team, sid, tid);
    topics.set(key, topic);
  }
  try {
    await topic.ready;
  } catch (e) {
    if (topics.get(key) === topic) topics.delete(key);
    throw e;
  }
  const last = lastEventId(req);
  res.on("error", () => {});
  // A read that the in-memory catch-up cannot bridge (very far behind) is simply redone.
  for (let attempt = 0; attempt < 3; attempt++) {
    const parts = [sseRetry(RETRY_MS)];
    let cursor = null;
    if (typeof last === "number") {
      const current = Number((await db.query("SELECT last_seq FROM topics WHERE team_id = $1 AND session_id = $2 AND id = $3", [team, sid, tid])).rows[0].last_seq);
      if (last <= current) {
        const { rows } = await db.query("SELECT seq, type, body FROM events WHERE team_id = $1 AND session_id = $2 AND topic_id = $3 AND seq > $4 ORDER BY seq", [team, sid, tid, last]);
        for (const r of rows) parts.push(sseEvent({ id: r.seq, event: r.type, data: r.body }));
        cursor = rows.length ? Number(rows[rows.length - 1].seq) : last;
      } else {
        parts.push(sseEvent({ event: "reset", data: { reason: "ahead", last_event_id: last, current } }));
      }
    } else if (last === "invalid") {
      parts.push(sseEvent({ event: "reset", data: { reason: "invalid", last_event_id: null, current: topic.fanout.lastSeq } }));
    }
    if (cursor === null) {
      const snap = await snapshot(topic);
      parts.push(sseEvent({ id: snap.seq, event: "snapshot", data: snap.summary }));
      cursor = snap.seq;
    }
    if (res.destroyed) return;
    if (!res.headersSent) res.writeHead(200, SSE_HEADERS);
    if (topic.fanout.attach(res, Buffer.concat(parts), cursor)) return;
  }
  res.destroy();
}

const server = http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, "http://x").pathname;
    if (req.method === "GET" && path === "/healthz") return sendJson(res, 200, { ok: true });
    const m = TOPIC_STREAM.exec(path);
    if (req.method !== "GET" || !m) throw new HttpError(404, "Not found");
    const team = await auth(req);
    await stream(req, res, team, m[1] ?? m[3], m[2] ?? m[4]);
  } catch (e) {
    sendProblem(res, e);
  }
});
server.keepAliveTimeout = 65_000;
await redis.ping();
server.listen(Number(PORT), "127.0.0.1", () => console.log(`peer SSE server listening on 127.0.0.1:${server.address().port}`));
stopOnSigterm(server, { endStreams: () => topics.forEach((t) => t.fanout.endAll()), cleanup: async () => Promise.all([db.end(), redis.quit()]) });
