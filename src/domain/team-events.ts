/**
 * What the team stream (`GET /v1/stream`, one TeamHub per team) carries: every change to the
 * team's tasks, workers and questions, after it is written to D1. Pure: the routes build the
 * events from the rows they wrote; the hub logs, replays and fans them out.
 */
export const TEAM_EVENT_TYPES = [
  "task.created",
  "task.claimed",
  "task.running",
  "task.waiting_input",
  "task.completed",
  "task.retry_scheduled",
  "task.failed",
  "task.lease_expired",
  "task.blocked",
  "task.unblocked",
  "task.cancelled",
  "task.retried",
  "task.released",
  "worker.updated",
  "question.asked",
  "question.answered",
  "question.withdrawn",
  "budget.reached",
] as const;
export type TeamEventType = (typeof TEAM_EVENT_TYPES)[number];

export interface TeamEvent {
  /** Unique per team: the hub applies an id once, so a re-sent publication changes nothing. */
  id: string;
  type: TeamEventType;
  at: string;
  data: Record<string, unknown>;
}

/** Fields of a task left out of its events: they may be long (Markdown); GET /v1/tasks/:id has them. */
const HEAVY_TASK_FIELDS = ["description", "result"] as const;

/** A task as its events carry it: everything but the long fields (and never the lease). */
export function taskForEvent<T extends Record<string, unknown>>(task: T): Omit<T, (typeof HEAVY_TASK_FIELDS)[number] | "lease"> {
  const copy: Record<string, unknown> = { ...task };
  for (const field of [...HEAVY_TASK_FIELDS, "lease"]) delete copy[field];
  return copy as Omit<T, (typeof HEAVY_TASK_FIELDS)[number] | "lease">;
}

/** The event for a task a worker's `fail` just changed: back in the queue, or failed for good. */
export function failureEventType(status: string): TeamEventType {
  return status === "failed" ? "task.failed" : "task.retry_scheduled";
}

/** How much of a failed attempt's `result` its event carries: enough to say why in a chat line, not the report. */
export const FAILURE_REASON_CHARS = 300;

/**
 * The extra data of a `fail`'s event: the start of the report's `result` as `reason`, on one
 * line (it is Markdown, and is shown in chat messages and one-line event lists), since the
 * event leaves `result` itself out. Nothing when the worker gave no result.
 */
export function failureReason(result: string | null | undefined): { reason?: string } {
  const text = (result ?? "").replace(/\s+/g, " ").trim();
  if (text === "") return {};
  // By code points, so a cut never splits a surrogate pair.
  const chars = Array.from(text);
  return { reason: chars.length > FAILURE_REASON_CHARS ? `${chars.slice(0, FAILURE_REASON_CHARS - 1).join("").trimEnd()}…` : text };
}

/** The event for a task the cron took back from a silent worker. */
export function expiryEventType(status: string): TeamEventType {
  return status === "failed" ? "task.failed" : "task.lease_expired";
}

/**
 * The id of the budget event of a UTC day: the first claim refused for the budget announces
 * it, and every later one that day has the same id, which the hub applies only once.
 */
export function budgetEventId(day: string): string {
  return `budget.reached:${day}`;
}

/** The row an event is about, at the version of the write it reports. */
export interface EventRecord {
  kind: "task" | "question" | "worker";
  id: string;
  version: number;
}

/**
 * The record an event is about and its version (the D1 row's `version`, one more with every
 * write): `data.task`, `data.question` or `data.worker` (the whole record), or `data.task_id`
 * with `data.version` (`task.blocked`, `task.unblocked`). None for `budget.reached`, or for an
 * event without a version (published before rows had one, and queued since).
 */
export function eventRecord(event: TeamEvent): EventRecord | null {
  const data = event.data;
  const versioned = (kind: EventRecord["kind"], value: unknown): EventRecord | null => {
    if (typeof value !== "object" || value === null) return null;
    const { id, version } = value as { id?: unknown; version?: unknown };
    return typeof id === "string" && typeof version === "number" && Number.isInteger(version) ? { kind, id, version } : null;
  };
  if (event.type.startsWith("task.")) return versioned("task", data.task ?? { id: data.task_id, version: data.version });
  if (event.type.startsWith("question.")) return versioned("question", data.question);
  if (event.type.startsWith("worker.")) return versioned("worker", data.worker);
  return null;
}

/**
 * Whether an event reports a write older than the last one sent about its row: the two were
 * published in another order than D1 committed them (two requests at once, a publication
 * retried through the queue). Sent, it would undo the newer record in every client that
 * applies the records in order, so the hub drops it. An equal version is not stale: one write
 * may be told by two events.
 */
export function isStale(record: EventRecord, lastSent: number | undefined): boolean {
  return lastSent !== undefined && record.version < lastSent;
}
