import type { AgentEvent } from "../src/domain/events";
import type { Json } from "../src/domain/json";
import { type RejectedEvent, type SessionState, type SessionStatus, type TopicAnnouncements, applySessionEvent, isTerminal, newSession, reject, transitionSession } from "../src/domain/session";
import { dbOf } from "../src/db/client";
import { countSessionTopics, sessionTopicRows, topicListItem } from "../src/db/index-rows";
import { type ApplyReport, Hub } from "./hub";

/** Topics a session stream's snapshot lists (GET /v1/sessions/:sid/topics pages through all). */
const SNAPSHOT_TOPICS = 100;

export type SessionSummary = Omit<SessionState, "team_id" | "insight_bytes">;

/** One research session (named `{team_id}:{session_id}`): its state, log and session stream. */
export class SessionHub extends Hub<SessionState, SessionSummary> {
  /** The hypotheses the topics have in their hubs, given with the events being applied (see apply). */
  private currentTopics: ReadonlyMap<string, string | null> | undefined;
  private readonly topicsKnown: TopicAnnouncements = {
    announced: (id) => this.ctx.storage.sql.exec<{ hypothesis: string | null }>(`SELECT hypothesis FROM session_topics WHERE topic_id = ?`, id).toArray()[0]?.hypothesis,
    current: (id) => this.currentTopics?.get(id),
  };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => this.migrateTopics());
  }

  /**
   * The topics this session announced (`topic_added` logged), with the hypothesis announced:
   * a table, not the state row (capped at 2 MB), so any number of topics fits. A hub older than
   * the table fills it from the topic_added events its log still keeps.
   */
  private migrateTopics(): void {
    const sql = this.ctx.storage.sql;
    const existed = sql.exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'session_topics'`).toArray().length > 0;
    if (existed) return;
    sql.exec(`CREATE TABLE session_topics (topic_id TEXT PRIMARY KEY, hypothesis TEXT)`);
    sql.exec(
      `INSERT INTO session_topics (topic_id, hypothesis)
       SELECT json_extract(body, '$.data.topic_id'), json_extract(body, '$.data.hypothesis') FROM hub_events
       WHERE type = 'topic_added' AND json_type(body, '$.data.topic_id') = 'text' ORDER BY seq
       ON CONFLICT (topic_id) DO UPDATE SET hypothesis = COALESCE(session_topics.hypothesis, excluded.hypothesis)`,
    );
  }

  protected reduce(state: SessionState, event: AgentEvent, now: string) {
    const outcome = applySessionEvent(state, event, now, this.topicsKnown);
    // Remembered in the same transaction as the log entry (reduce runs inside applyEvents'),
    // so a topic is marked announced exactly when its topic_added is logged: a failure in
    // between undoes both, and the redelivery announces it.
    if (event.type === "topic_added" && outcome.accepted && !outcome.unchanged) {
      const data = event.data as { topic_id: string; hypothesis?: string };
      this.ctx.storage.sql.exec(
        `INSERT INTO session_topics (topic_id, hypothesis) VALUES (?, ?) ON CONFLICT (topic_id) DO UPDATE SET hypothesis = excluded.hypothesis`,
        data.topic_id,
        data.hypothesis ?? null,
      );
    }
    return outcome;
  }

  protected summarize(state: SessionState): SessionSummary {
    const { team_id: _team, insight_bytes: _bytes, ...rest } = state;
    return rest;
  }

  /** Creates the session; false when it already exists (the caller answers 409). */
  async create(init: { id: string; team_id: string; title?: string | null; metadata?: Record<string, Json>; created_at?: string }): Promise<{ created: boolean; summary: SessionSummary; version: number }> {
    const created = this.state === null;
    // `created_at`: the time the index row was stamped with, so the list and the summary agree.
    const { created_at, ...rest } = init;
    if (created) this.save(newSession({ ...rest, now: created_at ?? new Date().toISOString() }));
    return { created, summary: this.summarize(this.state as SessionState), version: this.version };
  }

  /**
   * A stream's snapshot: the session, plus its topics as the index lists them (the first
   * SNAPSHOT_TOPICS, and how many there are), so a watcher starts knowing every topic and
   * learns new ones from `topic_added`. A topic's progress streams on its own stream.
   */
  protected override async readSnapshot(): Promise<unknown> {
    // Read after Hub.fetch took the sequence number it sends this with, and every topic's
    // index row is written before its topic_added is logged: so the topics listed include
    // every topic announced up to that number (a later one may be listed too, and is replayed).
    const state = this.state as SessionState;
    const db = dbOf(this.env);
    const [rows, [count]] = await db.batch([sessionTopicRows(db, state.team_id, state.id, SNAPSHOT_TOPICS, null), countSessionTopics(db, state.team_id, state.id)]);
    return { ...this.summarize(state), topics: rows.map(topicListItem), topics_total: count?.n ?? rows.length };
  }

  /**
   * `topics`: the hypothesis each topic named by a `topic_added` has in its hub, as the caller
   * read it after creating the topic (and writing its index row, so the stream's snapshot lists
   * every topic announced before it). A `topic_added` whose hypothesis the topic did not take
   * is not announced with it. Without an entry, the event's own hypothesis is taken as the topic's.
   */
  async apply(events: AgentEvent[], topics?: ReadonlyMap<string, string | null>): Promise<ApplyReport<SessionSummary>> {
    this.currentTopics = topics;
    try {
      return this.applyEvents(events);
    } finally {
      this.currentTopics = undefined;
    }
  }

  /**
   * A person's status change (PATCH): checked against the session's state machine and applied
   * in one turn of this object, so a change an agent's event made a moment before cannot turn
   * the operator's request into a refusal recorded on the session. Refused: nothing changes.
   */
  async applyOperatorStatus(event: AgentEvent, status: SessionStatus): Promise<{ refused: string } | ApplyReport<SessionSummary>> {
    if (!this.state) return { refused: "not_found" };
    if (isTerminal(this.state.status)) return { refused: `The session is ${this.state.status}; a terminal session is never changed.` };
    const allowed = transitionSession(this.state.status, status);
    if (!allowed.ok) return { refused: allowed.reason };
    return this.applyEvents([event]);
  }

  /** Records events a TopicHub refused, so they are visible on the session. */
  async recordRejected(rejected: RejectedEvent[]): Promise<void> {
    if (!this.state || rejected.length === 0) return;
    let state = this.state;
    const now = new Date().toISOString();
    for (const r of rejected) {
      if (state.rejected_events.some((e) => e.event_id === r.event_id)) continue;
      state = reject(state, { id: r.event_id, type: r.type }, r.reason, now).state;
    }
    this.save(state);
  }
}
