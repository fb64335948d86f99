import { DurableObject } from "cloudflare:workers";
import type { AgentEvent } from "../src/domain/events";
import { planReplay, trimBelow } from "../src/domain/replay";
import { SSE_HEADERS, concat, parseLastEventId, sseEvent, sseRetry } from "../src/lib/sse";
import { Fanout, type ReplaySource } from "./fanout";

/** Applied event ids are kept this long: longer than a queue retains a message (4 days). */
export const APPLIED_TTL_MS = 14 * 24 * 3600 * 1000;
/** How long a client waits before it reconnects (the stream's `retry:`). */
const RETRY_MS = 2000;
/**
 * A replay is read from the log and sent in pages of about this many bytes (at least one
 * event, so at most this plus one event of up to 1 MiB), each when the reader took the last:
 * built whole, a replay of 1,000 events near 1 MB each would take ~1 GB per client, far past
 * a Durable Object's 128 MB, and reset the object and every stream on it.
 */
export const REPLAY_PAGE_BYTES = 512 * 1024;
/** And at most this many events a page, however small. */
const REPLAY_PAGE_EVENTS = 500;

export type ApplyResult =
  | { event_id: string; status: "applied"; seq: number }
  | { event_id: string; status: "duplicate" }
  | { event_id: string; status: "unchanged" }
  | { event_id: string; status: "rejected"; reason: string };

export interface ApplyReport<Summary> {
  results: ApplyResult[];
  summary: Summary;
  /** Grows with every change to the state: the D1 index keeps the row with the highest. */
  version: number;
}

/**
 * A reducer's answer (src/domain/session.ts's Outcome: `unchanged` is accepted, not news;
 * `logged`: fields added to the event as logged and broadcast, src/domain/topic.ts's TopicOutcome).
 */
type Outcome<S> = { accepted: true; state: S; unchanged?: true; logged?: Record<string, unknown> } | { accepted: false; state: S; reason: string };

/** What a hub logs: an id (applied once) and a type (the SSE event name); the rest is the body. */
export interface HubEvent {
  id: string;
  type: string;
}

/**
 * The event log and SSE fan-out shared by SessionHub and TopicHub. State is one small row;
 * the log and the applied ids are tables, so replay works after eviction or a deploy.
 * Subclasses supply the reducer and the summary.
 */
export abstract class Hub<S, Summary, E extends HubEvent = AgentEvent> extends DurableObject<Env> {
  protected state: S | null = null;
  protected version = 0;
  protected lastSeq = 0;
  private readonly streams: Fanout;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const heartbeatMs = Number(env.HEARTBEAT_MS);
    this.streams = new Fanout(Number.isFinite(heartbeatMs) && heartbeatMs > 0 ? heartbeatMs : 15_000);
    ctx.blockConcurrencyWhile(async () => {
      this.migrate();
      this.load();
    });
  }

  protected abstract reduce(state: S, event: E, now: string): Outcome<S>;
  protected abstract summarize(state: S): Summary;

  private migrate(): void {
    const sql = this.ctx.storage.sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS hub_state (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL, version INTEGER NOT NULL, last_seq INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS hub_events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS hub_applied (event_id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`);
    sql.exec(`CREATE INDEX IF NOT EXISTS hub_applied_at ON hub_applied (applied_at)`);
  }

  private load(): void {
    const row = this.ctx.storage.sql.exec<{ json: string; version: number; last_seq: number }>(`SELECT json, version, last_seq FROM hub_state WHERE id = 1`).toArray()[0];
    if (row) {
      this.state = JSON.parse(row.json) as S;
      this.version = row.version;
      this.lastSeq = row.last_seq;
    }
  }

  protected save(state: S): void {
    this.writeState(state, this.version + 1, this.lastSeq);
    this.state = state;
    this.version += 1;
  }

  private writeState(state: S, version: number, lastSeq: number): void {
    this.ctx.storage.sql.exec(
      `INSERT INTO hub_state (id, json, version, last_seq) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json, version = excluded.version, last_seq = excluded.last_seq`,
      JSON.stringify(state),
      version,
      lastSeq,
    );
  }

  /** The current state's summary, or null when this hub was never created. */
  async summary(): Promise<{ summary: Summary; version: number } | null> {
    return this.state ? { summary: this.summarize(this.state), version: this.version } : null;
  }

  /**
   * Applies events in the order given, each exactly once: an id seen before is a duplicate
   * and changes nothing. Accepted events are logged with the next sequence number and sent
   * to every subscriber; rejected ones are neither logged nor sent (their id is still
   * remembered, so a re-sent refused event is not refused and recorded twice).
   */
  protected applyEvents(events: E[], initial?: S): ApplyReport<Summary> {
    // `initial`: the state of a hub not created yet, kept only if an event is accepted into it
    // (a refused event must not create what it names); the ids are remembered either way.
    const uncreated = this.state === null;
    if (uncreated && initial === undefined) throw new Error("hub is not created");
    const results: ApplyResult[] = [];
    const toSend: Uint8Array[] = [];
    const sql = this.ctx.storage.sql;
    // Worked on in locals and kept only once the transaction commits; the state row is
    // written once per call, however many events the batch carried.
    let state: S = (this.state ?? initial) as S;
    let version = this.version;
    let lastSeq = this.lastSeq;
    this.ctx.storage.transactionSync(() => {
      for (const event of events) {
        const nowMs = Date.now();
        const now = new Date(nowMs).toISOString();
        const seen = sql.exec(`SELECT 1 FROM hub_applied WHERE event_id = ?`, event.id).toArray().length > 0;
        if (seen) {
          results.push({ event_id: event.id, status: "duplicate" });
          continue;
        }
        sql.exec(`INSERT INTO hub_applied (event_id, applied_at) VALUES (?, ?)`, event.id, nowMs);
        const outcome = this.reduce(state, event, now);
        // The reducer may record a refusal in its state (the session lists them).
        state = outcome.state;
        version += 1;
        if (!outcome.accepted) {
          results.push({ event_id: event.id, status: "rejected", reason: outcome.reason });
          continue;
        }
        // Accepted, but nothing to tell (a repeat, or late history): not logged, not sent. Not
        // so for the first event accepted into a hub not created yet: it creates the topic,
        // which is news (a report of no usage would otherwise leave it uncreated).
        if (outcome.unchanged && !(uncreated && lastSeq === this.lastSeq)) {
          results.push({ event_id: event.id, status: "unchanged" });
          continue;
        }
        lastSeq += 1;
        // Logged and sent as received, plus when it was applied (LoggedEvent for agents' events).
        const body = JSON.stringify({ ...event, ...outcome.logged, received_at: now });
        sql.exec(`INSERT INTO hub_events (seq, event_id, type, body) VALUES (?, ?, ?, ?)`, lastSeq, event.id, event.type, body);
        results.push({ event_id: event.id, status: "applied", seq: lastSeq });
        // Encoded only for someone to send it to: most topics have no one watching.
        if (this.streams.size > 0) toSend.push(sseEvent({ id: lastSeq, event: event.type, data: body }));
      }
      if (version === this.version) return;
      if (uncreated && lastSeq === this.lastSeq) return;
      this.writeState(state, version, lastSeq);
      sql.exec(`DELETE FROM hub_events WHERE seq <= ?`, trimBelow(lastSeq, this.history()));
    });
    if (uncreated && lastSeq === this.lastSeq) {
      void this.ensureAlarm(); // the ids it remembered are forgotten in time like any others
      return { results, summary: this.summarize(state), version: this.version };
    }
    this.state = state;
    this.version = version;
    this.lastSeq = lastSeq;
    for (const chunk of toSend) this.streams.enqueue(chunk);
    void this.ensureAlarm();
    return { results, summary: this.summarize(state), version };
  }

  private history(): number {
    const n = Number(this.env.STREAM_HISTORY);
    return Number.isFinite(n) && n > 0 ? n : 1000;
  }

  /**
   * The snapshot a new stream starts with, when it is read from elsewhere (TeamHub reads
   * D1); undefined: the hub's own summary, read with no wait.
   */
  protected async readSnapshot(): Promise<unknown> {
    return undefined;
  }

  /** Streams: `retry`, then a snapshot or the replay after Last-Event-ID, then live events. */
  override async fetch(request: Request): Promise<Response> {
    if (!this.state) return new Response("not found", { status: 404 });
    const url = new URL(request.url);
    const lastId = parseLastEventId(request.headers.get("Last-Event-ID") ?? url.searchParams.get("last_event_id"));
    const sql = this.ctx.storage.sql;
    const oldestSeq = () => sql.exec<{ s: number | null }>(`SELECT MIN(seq) AS s FROM hub_events`).one().s ?? this.lastSeq + 1;

    // A snapshot read elsewhere is read first, and the events applied while it was read are
    // replayed after it: a client may see a change twice (events carry whole records), never miss one.
    const snapshotAt = this.lastSeq;
    const external = planReplay(lastId, oldestSeq(), snapshotAt).kind === "replay" ? undefined : await this.readSnapshot();

    // From here to the subscription is synchronous (SQLite calls are), so no event can be
    // applied in between; a replay is then read a page at a time, and the stream joins the
    // live events in the call that read the last page (Fanout.open): no gap, no duplicate.
    const plan = planReplay(lastId, oldestSeq(), this.lastSeq);
    const first: Uint8Array[] = [sseRetry(RETRY_MS)];
    let replayAfter: number | null = null;
    if (plan.kind === "replay") {
      replayAfter = plan.after;
    } else {
      if (plan.kind === "reset") first.push(sseEvent({ event: "reset", data: { reason: plan.reason, last_event_id: lastId === "invalid" ? null : lastId, current: this.lastSeq } }));
      if (external === undefined) {
        first.push(sseEvent({ id: this.lastSeq, event: "snapshot", data: this.summarize(this.state) }));
      } else {
        first.push(sseEvent({ id: snapshotAt, event: "snapshot", data: external }));
        replayAfter = snapshotAt;
      }
    }
    const replay = replayAfter !== null && replayAfter < this.lastSeq ? { after: replayAfter, source: this.replaySource } : undefined;
    const { readable, handle } = this.streams.open(concat(first), replay);
    request.signal?.addEventListener("abort", () => this.streams.drop(handle));
    return new Response(readable, { headers: SSE_HEADERS });
  }

  /** The log, a page at a time, for replays (see REPLAY_PAGE_BYTES). */
  private readonly replaySource: ReplaySource = {
    next: (after) => {
      const sql = this.ctx.storage.sql;
      // Sizes first, so the page ends within the budget without reading past it.
      const sizes = sql
        .exec<{ seq: number; bytes: number }>(`SELECT seq, length(CAST(body AS BLOB)) AS bytes FROM hub_events WHERE seq > ? ORDER BY seq LIMIT ?`, after, REPLAY_PAGE_EVENTS)
        .toArray();
      // Sequence numbers have no holes, so a first one past after + 1 means the log was
      // trimmed past what this reader got.
      if (sizes.length === 0) return after >= this.lastSeq ? { chunk: null, last: after, caughtUp: true } : "gap";
      if ((sizes[0] as { seq: number }).seq !== after + 1) return "gap";
      let last = after;
      let bytes = 0;
      for (const row of sizes) {
        if (bytes > 0 && bytes + row.bytes > REPLAY_PAGE_BYTES) break;
        bytes += row.bytes;
        last = row.seq;
      }
      const events: Uint8Array[] = [];
      for (const row of sql.exec<{ seq: number; type: string; body: string }>(`SELECT seq, type, body FROM hub_events WHERE seq > ? AND seq <= ? ORDER BY seq`, after, last)) {
        events.push(sseEvent({ id: row.seq, event: row.type, data: row.body }));
      }
      return { chunk: concat(events), last, caughtUp: last >= this.lastSeq };
    },
  };

  /**
   * Restarts this object the way a deploy does: its streams drop (clients resume them by
   * Last-Event-ID), memory is discarded and the next request loads it from storage. The
   * abort also rejects this call, which the caller expects.
   */
  async restart(): Promise<void> {
    // Ended first, so clients see a clean end of stream rather than a broken one; a reader
    // too slow to take its last chunks within 200 ms is cut off by the abort.
    await this.streams.closeAll(200);
    this.ctx.abort("restarted");
  }

  /** How many streams are open: for tests and the status page. */
  async subscriberCount(): Promise<number> {
    return this.streams.size;
  }

  /** What this object holds for its streams' readers, not taken yet: for tests of the bound. */
  async unsentBytes(): Promise<number> {
    return this.streams.unsentBytes;
  }

  /** Known set while this object lives, so the storage is asked once, not on every apply. */
  private alarmSet = false;

  private async ensureAlarm(): Promise<void> {
    if (this.alarmSet) return;
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + 24 * 3600 * 1000);
    this.alarmSet = true;
  }

  /** Forgets applied event ids after APPLIED_TTL_MS; runs daily while any are kept. */
  override async alarm(): Promise<void> {
    this.alarmSet = false;
    this.ctx.storage.sql.exec(`DELETE FROM hub_applied WHERE applied_at < ?`, Date.now() - APPLIED_TTL_MS);
    const left = this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM hub_applied`).one().n;
    if (left > 0) await this.ctx.storage.setAlarm(Date.now() + 24 * 3600 * 1000);
  }

  /** Stored event count and applied-id count: for tests of trimming and the TTL. */
  async storageCounts(): Promise<{ events: number; applied: number; last_seq: number }> {
    const sql = this.ctx.storage.sql;
    return {
      events: sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM hub_events`).one().n,
      applied: sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM hub_applied`).one().n,
      last_seq: this.lastSeq,
    };
  }
}
