import { dbOf } from "../src/db/client";
import { listQuestions } from "../src/db/questions";
import { countTasksByStatus } from "../src/db/tasks";
import { listWorkers } from "../src/db/workers";
import { type TeamEvent, eventRecord, isStale } from "../src/domain/team-events";
import { toQuestion, toWorker } from "../src/lib/task-schemas";
import { APPLIED_TTL_MS, Hub } from "./hub";

export interface TeamHubState {
  team_id: string;
  created_at: string;
  events: number;
  last_event_at: string | null;
}

/** How much of the team a new stream's snapshot shows; the lists have the rest. */
const SNAPSHOT_WORKERS = 200;
const SNAPSHOT_QUESTIONS = 50;

/**
 * One team's stream (named by the team id): task, worker and question events with the same
 * log, replay by Last-Event-ID and heartbeats as session streams. The truth is in D1; the hub
 * keeps the events, and a new stream starts with a snapshot read from D1.
 */
export class TeamHub extends Hub<TeamHubState, Omit<TeamHubState, "team_id">, TeamEvent> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => this.migrateVersions());
  }

  /**
   * The version of the last record sent about each task, question and worker (src/domain/
   * team-events.ts `eventRecord`), and when: a table, one row per record, so any number fits.
   * A row is forgotten with the applied event ids (alarm), not with the log's trimming: an
   * event retried through the queue may arrive days late, long after a busy team's log has
   * dropped the event that outdated it, and must still be dropped. Each row was last written
   * by an event whose id is kept as long, so there are never more rows than kept ids.
   */
  private migrateVersions(): void {
    const sql = this.ctx.storage.sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS team_records (kind TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, sent_at INTEGER NOT NULL, PRIMARY KEY (kind, id))`);
    sql.exec(`CREATE INDEX IF NOT EXISTS team_records_sent_at ON team_records (sent_at)`);
  }

  /**
   * The routes publish after their D1 write commits, and two requests at once may publish in
   * the other order than they committed (the queue's retries too): the hub numbers events as
   * they arrive. So an event whose record is older than one already sent is accepted as
   * unchanged (neither logged nor sent, as the session hubs do with late history), and each
   * row's record only moves forward on the stream. Runs inside applyEvents' transaction: the
   * version is remembered exactly when the event is logged.
   */
  protected reduce(state: TeamHubState, event: TeamEvent, now: string) {
    const record = eventRecord(event);
    if (record) {
      const sql = this.ctx.storage.sql;
      const sent = sql.exec<{ version: number }>(`SELECT version FROM team_records WHERE kind = ? AND id = ?`, record.kind, record.id).toArray()[0]?.version;
      if (isStale(record, sent)) return { accepted: true as const, unchanged: true as const, state };
      sql.exec(
        `INSERT INTO team_records (kind, id, version, sent_at) VALUES (?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET version = max(version, excluded.version), sent_at = excluded.sent_at`,
        record.kind,
        record.id,
        record.version,
        Date.parse(now),
      );
    }
    return { accepted: true as const, state: { ...state, events: state.events + 1, last_event_at: now } };
  }

  /** Forgets the records' versions with the applied ids (see migrateVersions). */
  override async alarm(): Promise<void> {
    this.ctx.storage.sql.exec(`DELETE FROM team_records WHERE sent_at < ?`, Date.now() - APPLIED_TTL_MS);
    await super.alarm();
  }

  /** How many records' versions are kept: for tests of the bound. */
  async recordVersionCount(): Promise<number> {
    return this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM team_records`).one().n;
  }

  protected summarize(state: TeamHubState): Omit<TeamHubState, "team_id"> {
    const { team_id: _team, ...rest } = state;
    return rest;
  }

  private ensure(teamId: string): void {
    if (!this.state) this.save({ team_id: teamId, created_at: new Date().toISOString(), events: 0, last_event_at: null });
  }

  /** Logs and sends the events (each id once); returns how many were new. */
  async publish(teamId: string, events: TeamEvent[]): Promise<{ applied: number }> {
    this.ensure(teamId);
    const { results } = this.applyEvents(events);
    return { applied: results.filter((r) => r.status === "applied").length };
  }

  /** A team's stream exists as soon as the team does: the route has checked the team. */
  override async fetch(request: Request): Promise<Response> {
    const teamId = request.headers.get("X-Team-Id");
    if (teamId) this.ensure(teamId);
    return super.fetch(request);
  }

  /** Task counts by status, the workers and the open questions, as D1 has them now. */
  protected override async readSnapshot(): Promise<unknown> {
    const teamId = this.state?.team_id as string;
    const db = dbOf(this.env);
    const [counts, workers, questions] = await Promise.all([countTasksByStatus(db, teamId), listWorkers(db, teamId, SNAPSHOT_WORKERS, null), listQuestions(db, teamId, "open", SNAPSHOT_QUESTIONS, null)]);
    return { tasks: counts, workers: workers.map(toWorker), open_questions: questions.map(toQuestion) };
  }
}
