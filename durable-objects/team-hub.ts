import { dbOf } from "../src/db/client";
import { listQuestions } from "../src/db/questions";
import { countTasksByStatus } from "../src/db/tasks";
import { listWorkers } from "../src/db/workers";
import type { TeamEvent } from "../src/domain/team-events";
import { toQuestion, toWorker } from "../src/lib/task-schemas";
import { Hub } from "./hub";

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
  protected reduce(state: TeamHubState, _event: TeamEvent, now: string) {
    return { accepted: true as const, state: { ...state, events: state.events + 1, last_event_at: now } };
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
