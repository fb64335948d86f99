import { type Colors, oneLine } from "./output";

/** A team stream event as `GET /v1/stream` sends it (src/domain/team-events.ts, plus `received_at`). */
export interface TeamStreamEvent {
  id: string;
  type: string;
  at: string;
  data: Record<string, unknown>;
}

/** The longest event type, `task.retry_scheduled`: types line up in a column. */
const TYPE_WIDTH = 20;
const TEXT_WIDTH = 72;

/**
 * The event in an SSE message, or null for what is not one: the `snapshot` and `reset` the
 * stream starts with, and data that is not a team event.
 */
export function parseTeamEvent(type: string | undefined, data: string): TeamStreamEvent | null {
  if (!type || type === "snapshot" || type === "reset") return null;
  try {
    const event = JSON.parse(data) as Partial<TeamStreamEvent> | null;
    if (!event || typeof event !== "object" || typeof event.id !== "string" || typeof event.type !== "string") return null;
    return { id: event.id, type: event.type, at: typeof event.at === "string" ? event.at : "", data: event.data && typeof event.data === "object" ? event.data : {} };
  } catch {
    return null;
  }
}

const str = (v: unknown, fallback = "?") => (typeof v === "string" && v.length > 0 ? v : fallback);
const record = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const money = (v: unknown) => (typeof v === "number" ? `$${v.toFixed(2)}` : "?");

/** What the event is about, in a few words: the task's title, the worker, the question's text. */
export function describeEvent(event: TeamStreamEvent): string {
  const d = event.data;
  if (event.type === "task.blocked") return `${str(d.task_id)} blocked by ${str(d.blocked_by)}`;
  if (event.type === "task.unblocked") return `${str(d.task_id)} unblocked`;
  if (event.type.startsWith("task.")) {
    const t = record(d.task);
    const who = event.type === "task.claimed" && typeof d.worker_id === "string" ? ` by ${d.worker_id}` : "";
    const why = typeof d.reason === "string" ? `: ${d.reason}` : "";
    return `${oneLine(str(t.title, ""), 48) || "?"} (${str(t.id)})${who}${why}`;
  }
  if (event.type === "worker.updated") {
    const w = record(d.worker);
    const on = typeof w.current_task === "string" ? ` on ${w.current_task}` : "";
    return `${str(w.id)} (${str(w.role)}) ${str(w.status)}${on}`;
  }
  if (event.type === "question.asked" || event.type === "question.answered" || event.type === "question.withdrawn") {
    const q = record(d.question);
    const what = { "question.asked": "asks", "question.answered": "was answered", "question.withdrawn": "no longer asks" }[event.type];
    return `${str(q.worker_id)} ${what}: ${oneLine(str(q.text, ""), 60)}`;
  }
  if (event.type === "budget.reached") return `daily budget ${money(d.daily_budget_usd)} reached, ${money(d.spent_usd)} spent on ${str(d.day)} (UTC)`;
  return "";
}

/** HH:MM:SS in local time, as the watch header shows the time. */
export function clockTime(iso: string): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "--:--:--";
  return [t.getHours(), t.getMinutes(), t.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

const TYPE_COLOURS: Record<string, keyof Colors> = {
  "task.completed": "green",
  "task.failed": "red",
  "task.lease_expired": "yellow",
  "task.retry_scheduled": "yellow",
  "task.blocked": "magenta",
  "question.asked": "yellow",
  "budget.reached": "red",
};

/** One line of the watch's "Recent" list: time, type, and what it is about. */
export function recentLine(event: TeamStreamEvent, c: Colors): string {
  const name = TYPE_COLOURS[event.type];
  const paint = name ? (c[name] as (s: string) => string) : (s: string) => s;
  const text = oneLine(describeEvent(event), TEXT_WIDTH);
  return `${c.dim(clockTime(event.at))} ${paint(event.type.padEnd(TYPE_WIDTH))}${text ? ` ${text}` : ""}`.trimEnd();
}
