import { type AgentEvent, dataOf, eventTime, instant, invalidData, ownEntry } from "./events";
import type { Json } from "./json";
import { MAX_STATE_BYTES, jsonBytes } from "./state-size";

export const SESSION_STATUSES = ["created", "running", "completed", "failed"] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

export interface RejectedEvent {
  event_id: string;
  type: string;
  reason: string;
}

export interface Insight {
  id: string;
  title?: string;
  status: "started" | "failed";
  error?: string;
}

/** The state a SessionHub keeps: small, rewritten as one row per change. */
export interface SessionState {
  id: string;
  team_id: string;
  status: SessionStatus;
  status_reason?: string;
  /**
   * The latest `occurred_at` of the status reports applied (absent until one was, and on
   * sessions stored before it): a report of an earlier status that occurred before it is
   * history, not a forbidden change.
   */
  status_at?: string;
  title: string | null;
  metadata: Record<string, Json>;
  created_at: string;
  updated_at: string;
  insights: Record<string, Insight>;
  /** What `insights` takes as JSON, kept as they change (absent in states stored before: then counted once). */
  insight_bytes?: number;
  /** Bounded: the newest REJECTED_KEEP are kept, so a misbehaving agent cannot grow the row forever. */
  rejected_events: RejectedEvent[];
}

export const REJECTED_KEEP = 100;

/**
 * What applying an event did. `unchanged`: accepted (its id is spent) but nothing anyone sees
 * changed — a repeat, or history that arrived late — so the hub neither logs nor broadcasts
 * it: a watcher applying events in order must not see a finished session running again.
 */
export type Outcome<S> = { accepted: true; state: S; unchanged?: true } | { accepted: false; state: S; reason: string };

/** How far along the state machine a status is. */
const STATUS_RANK: Record<SessionStatus, number> = { created: 0, running: 1, completed: 2, failed: 2 };

export function isTerminal(status: SessionStatus): boolean {
  return status === "completed" || status === "failed";
}

/**
 * The session state machine: `created → running → completed | failed`.
 * Terminal states are never left; setting the current status again is a harmless no-op.
 */
export function transitionSession(from: SessionStatus, to: SessionStatus): { ok: true } | { ok: false; reason: string } {
  if (from === to) return { ok: true };
  if (isTerminal(from)) return { ok: false, reason: `session is ${from}; it cannot become ${to}` };
  if (to === "created") return { ok: false, reason: `session is ${from}; it cannot go back to created` };
  return { ok: true };
}

export function newSession(init: { id: string; team_id: string; title?: string | null; metadata?: Record<string, Json>; now: string }): SessionState {
  return {
    id: init.id,
    team_id: init.team_id,
    status: "created",
    title: init.title ?? null,
    metadata: init.metadata ?? {},
    created_at: init.now,
    updated_at: init.now,
    insights: {},
    rejected_events: [],
  };
}

/**
 * What the session's hub knows of a topic when a `topic_added` names it. Kept outside the
 * state (the hub has a table of them), since a session may have any number of topics and the
 * state is one row capped at 2 MB.
 */
export interface TopicAnnouncements {
  /** The hypothesis the topic was announced with on the session stream (null: none); undefined: never announced. */
  announced(topicId: string): string | null | undefined;
  /** The hypothesis the topic has in its own hub, read just before (null: none); undefined: not known, the event's own is taken as it. */
  current(topicId: string): string | null | undefined;
}

/**
 * Applies one session-level event. Pure: the hub persists and broadcasts what it returns.
 * `topics`: what the hub knows of the topics `topic_added` names (without it, every valid
 * `topic_added` is news, as for a session that never announced one).
 */
export function applySessionEvent(state: SessionState, event: AgentEvent, now: string, topics?: TopicAnnouncements): Outcome<SessionState> {
  let outcome: Outcome<SessionState>;
  try {
    outcome = applySessionEventData(state, event, now, topics);
  } catch (error) {
    const reason = invalidData(error);
    if (reason === null) throw error;
    return reject(state, event, reason, now);
  }
  if (!outcome.accepted) return outcome;
  // Its insights are bounded, but not all the rest (metadata up to a request's 1 MiB, a
  // status reason, the refusals listed): what the row would take is measured, and an event
  // past MAX_STATE_BYTES refused, so the row write (2 MB at most) never fails. A state that
  // grows no further is let through: one stored over the line before may still shrink.
  // A session must always be able to end: insights are held to less, keeping room for the
  // status and its reason (10,000 characters, 6 bytes each escaped).
  const status = event.type === "update_status";
  const line = status ? MAX_STATE_BYTES : MAX_STATE_BYTES - STATUS_RESERVE;
  const bytes = sessionStateBytes(outcome.state);
  if (bytes <= line || bytes <= sessionStateBytes(state)) return outcome;
  const why = status ? `over the ${MAX_STATE_BYTES} one session keeps (its row is capped at 2 MB)` : `over the ${line} a session keeps for insights (the rest of its row, capped at 2 MB, is kept for its status)`;
  return reject(state, event, `the session's state would take ${bytes} bytes as JSON, ${why}`, now);
}

/** What a status report can take at most (its reason; its stamp): kept free of insights. */
export const STATUS_RESERVE = 130_000;

/**
 * What the hub's row takes (JSON.stringify of the state, in UTF-8). The insights, up to
 * 512 KiB, are counted as kept (insight_bytes, exact) rather than serialised again for every
 * event; `{}` stands in for them.
 */
export function sessionStateBytes(state: SessionState): number {
  return jsonBytes({ ...state, insights: {} }) - 2 + (state.insight_bytes ?? jsonBytes(state.insights));
}

function applySessionEventData(state: SessionState, event: AgentEvent, now: string, topics: TopicAnnouncements | undefined): Outcome<SessionState> {
  const touched = { ...state, updated_at: now };
  switch (event.type) {
    case "update_status": {
      const data = dataOf({ ...event, type: "update_status" });
      const at = eventTime(event, now);
      // Ending an ended session the same way again changes nothing, its reason included.
      if (isTerminal(state.status) && data.status === state.status) return { accepted: true, state, unchanged: true };
      // Queues keep no order: a `running` that occurred before the session ended (or a
      // `created` before it ran) may arrive after it. That is history, not a forbidden change:
      // accepted, and it changes nothing. Only a report that occurred later is refused. A
      // report without occurred_at goes by when it was accepted; at that same instant it comes
      // after what was applied before (its own request's earlier events), so it is no history.
      // (One queued before acceptance was stamped has neither: it occurred when applied.)
      const sinceStatus = state.status_at === undefined ? Number.POSITIVE_INFINITY : instant(at) - instant(state.status_at);
      const stale = event.occurred_at !== undefined ? sinceStatus <= 0 : event.accepted_at !== undefined && sinceStatus < 0;
      if (stale && STATUS_RANK[data.status] < STATUS_RANK[state.status]) return { accepted: true, state, unchanged: true };
      const t = transitionSession(state.status, data.status);
      if (!t.ok) return reject(state, event, t.reason, now);
      const latest = state.status_at === undefined || instant(at) >= instant(state.status_at);
      const status_at = latest ? at : (state.status_at as string);
      // The reason goes with its status: a new status takes the reason given with it (or
      // none); a repeat of the current one updates it only if it is the latest report.
      const { status_reason: _prior, ...rest } = touched;
      const status_reason = data.status !== state.status ? data.reason : latest ? (data.reason ?? state.status_reason) : state.status_reason;
      const next = { ...rest, status: data.status, ...(status_reason !== undefined ? { status_reason } : {}), status_at };
      // The same status again, with the reason shown unchanged: kept (status_at), not news.
      if (data.status === state.status && status_reason === state.status_reason) return { accepted: true, state: next, unchanged: true };
      return { accepted: true, state: next };
    }
    case "topic_added": {
      // The topic itself is created by the queue consumer (TopicHub + index row); the
      // session's log records that it was added, for the session stream: once per topic, with
      // the hypothesis the topic has, so a watcher's list matches GET …/topics/:tid.
      const data = dataOf({ ...event, type: "topic_added" });
      const hypothesis = data.hypothesis ?? null;
      const current = topics?.current(data.topic_id);
      // The topic has another hypothesis (it was created with one, or another event's came
      // first and a topic keeps its first; or this event gives none): this event's is not the
      // topic's, so it is not announced with it (the consumer follows it with the platform's announcement of what
      // the topic has, in case the topic was never announced).
      if (current !== undefined && current !== hypothesis) return { accepted: true, state, unchanged: true };
      const announced = topics?.announced(data.topic_id);
      // News: the topic's first announcement, or one that gives the hypothesis the first
      // lacked (a topic created by its first event, whose agent's topic_added came later).
      if (announced === undefined || (announced === null && hypothesis !== null)) return { accepted: true, state: touched };
      // Already announced as it is: a repeat under another id, accepted and not broadcast.
      return { accepted: true, state, unchanged: true };
    }
    case "insight_started": {
      const data = dataOf({ ...event, type: "insight_started" });
      const prior = ownEntry(state.insights, data.insight_id);
      // A late start never undoes a failure that was already recorded.
      const insight: Insight = prior?.status === "failed" ? { ...prior, title: data.title ?? prior.title } : { id: data.insight_id, title: data.title, status: "started" };
      return withInsight(state, touched, event, data.insight_id, prior, insight, now);
    }
    case "insight_failed": {
      const data = dataOf({ ...event, type: "insight_failed" });
      const prior = ownEntry(state.insights, data.insight_id);
      const insight: Insight = { id: data.insight_id, title: prior?.title, status: "failed", error: data.error };
      return withInsight(state, touched, event, data.insight_id, prior, insight, now);
    }
    default:
      return reject(state, event, `${event.type} is not a session-level event`, now);
  }
}

/**
 * The session's state is one row of its hub's SQLite (2 MB at most on Cloudflare), and its
 * insights are what grows in it (an error may take 10,000 characters): an insight event that
 * would take them past 512 KiB of JSON is refused with the reason, never the row write.
 */
export const MAX_INSIGHT_BYTES = 512 * 1024;

function withInsight(state: SessionState, touched: SessionState, event: AgentEvent, id: string, prior: Insight | undefined, insight: Insight, now: string): Outcome<SessionState> {
  // A new insight also adds its key ("id": and, after the first, a comma).
  const keyBytes = prior ? 0 : jsonBytes(id) + 1 + (Object.keys(state.insights).length > 0 ? 1 : 0);
  const bytes = (state.insight_bytes ?? jsonBytes(state.insights)) - (prior ? jsonBytes(prior) : 0) + keyBytes + jsonBytes(insight);
  if (bytes > MAX_INSIGHT_BYTES) return reject(state, event, `the session's insights would take ${bytes} bytes, over the ${MAX_INSIGHT_BYTES} a session keeps`, now);
  return { accepted: true, state: { ...touched, insights: { ...state.insights, [id]: insight }, insight_bytes: bytes } };
}

/**
 * Records a refused event on the session (visible in its summary) without changing anything
 * else. The list is in the row too, so it keeps the newest that fit under MAX_STATE_BYTES as
 * well as the newest REJECTED_KEEP: a refusal, that of a state too big included, never makes
 * the row too big to write.
 */
export function reject(state: SessionState, event: { id: string; type: string }, reason: string, now: string): Outcome<SessionState> {
  let rejected_events = [...state.rejected_events, { event_id: event.id, type: event.type, reason }].slice(-REJECTED_KEEP);
  let bytes = sessionStateBytes({ ...state, rejected_events, updated_at: now });
  let drop = 0;
  while (bytes > MAX_STATE_BYTES && drop < rejected_events.length) {
    // The oldest goes, with the comma after it (none after the last one).
    bytes -= jsonBytes(rejected_events[drop]) + (drop < rejected_events.length - 1 ? 1 : 0);
    drop += 1;
  }
  if (drop > 0) rejected_events = rejected_events.slice(drop);
  return { accepted: false, reason, state: { ...state, rejected_events, updated_at: now } };
}
