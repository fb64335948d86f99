import type { TeamEvent } from "./team-events";

/** A team event, or the test a person sends to check a channel. */
export type NotifiedEvent = Omit<TeamEvent, "type"> & { type: string };

/**
 * Outgoing notifications, without I/O: which team events notify people, how a channel's URL
 * is checked and shown, what each format's body looks like, and when a failed delivery is
 * tried again.
 */

/** The events worth waking a person for; a channel picks some or all of them. */
export const NOTIFIABLE_EVENTS = ["question.asked", "task.failed", "budget.reached"] as const;
export type NotifiableEvent = (typeof NOTIFIABLE_EVENTS)[number];
/** What `POST /v1/notifications/:id/test` sends. */
export const TEST_EVENT = "notification.test";

export const FORMATS = ["slack", "discord", "json"] as const;
export type Format = (typeof FORMATS)[number];

export const DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** Tries per delivery, the first included; the queue's max_retries (5) allows six. */
export const MAX_DELIVERY_ATTEMPTS = 5;
/**
 * The first wait after a failed try is up to 2 × this, and each later one doubles, up to the
 * cap (NOTIFY_MAX_BACKOFF_SECONDS, 300 deployed): 60, 120, 240, 300 s. Chat services' blips
 * last minutes, so the tries must spread over minutes, not seconds.
 */
export const DELIVERY_BACKOFF_BASE_SECONDS = 30;
/** A receiver that has not answered by then is counted as failed (and retried). */
export const DELIVERY_TIMEOUT_MS = 10_000;
export const MAX_CHANNELS_PER_TEAM = 20;
/** Discord refuses a message `content` longer than this. */
const DISCORD_LIMIT = 2000;

export function isNotifiable(type: string): type is NotifiableEvent {
  return (NOTIFIABLE_EVENTS as readonly string[]).includes(type);
}

/**
 * A channel's URL: https, or http to this machine's loopback (local development and tests:
 * a deployed Worker cannot reach a loopback address anyway). No credentials in the userinfo.
 */
export function checkChannelUrl(raw: string): { ok: true; url: URL } | { ok: false; reason: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: "is not a URL" };
  }
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) return { ok: false, reason: "must be https (http only to 127.0.0.1 or localhost)" };
  if (url.username || url.password) return { ok: false, reason: "must not carry a user name or password" };
  return { ok: true, url };
}

/** The format a URL's host implies: Slack's and Discord's incoming webhooks, else plain JSON. */
export function formatFor(url: URL): Format {
  if (url.hostname === "hooks.slack.com") return "slack";
  if (/(^|\.)discord(app)?\.com$/.test(url.hostname) && url.pathname.startsWith("/api/webhooks/")) return "discord";
  return "json";
}

/**
 * How a channel's URL is shown: the host and the last 4 characters of the path. Slack's and
 * Discord's webhook URLs are their credential, so the URL itself is never shown again.
 */
export function urlHint(url: URL): string {
  // Cut as a person reads it: decoded, by characters, never inside a %-escape or a surrogate pair.
  const chars = Array.from(safeDecode(url.pathname + url.search));
  return `${url.protocol}//${url.host}/…${chars.length > 4 ? chars.slice(-4).join("") : ""}`;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text; // a stray % (URL keeps it as written): shown as written
  }
}

const money = (n: unknown) => (typeof n === "number" ? `$${n.toFixed(2)}` : "?");
const str = (v: unknown, fallback = "?") => (typeof v === "string" && v.length > 0 ? v : fallback);
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** One line (or a few) a person reads in a chat channel. */
export function messageText(event: { type: string; data: Record<string, unknown> }): string {
  const d = event.data;
  if (event.type === "question.asked") {
    const q = (d.question ?? {}) as Record<string, unknown>;
    return `❓ ${str(q.worker_id)} asks about task ${str(q.task_id)}:\n${clip(str(q.text, ""), 1500)}\nAnswer with: switchboard respond ${str(q.id)} "…"`;
  }
  if (event.type === "task.failed") {
    const t = (d.task ?? {}) as Record<string, unknown>;
    // Why it failed: the start of the worker's result (one line, clipped where the event is made) or the cron's "lease expired".
    const why = typeof d.reason === "string" && d.reason !== "" ? ` (${d.reason})` : "";
    return `❌ Task failed${why}: ${clip(str(t.title), 300)} (${str(t.id)}), role ${str(t.role)}, after ${String(t.attempts ?? "?")} of ${String(t.max_attempts ?? "?")} attempts.`;
  }
  if (event.type === "budget.reached") {
    return `💸 Daily budget of ${money(d.daily_budget_usd)} reached: ${money(d.spent_usd)} spent on ${str(d.day)} (UTC). Claims resume at 00:00 UTC.`;
  }
  if (event.type === TEST_EVENT) return "✅ Switchboard test notification: this channel works.";
  return `${event.type}`;
}

/**
 * Slack reads `<…>` in `text` as markup — `<!channel>` pings everyone, `<https://x|invoice>`
 * shows a disguised link — and task titles and questions come from GitHub issues and agents.
 * Escaped as Slack asks (&amp; &lt; &gt;, https://api.slack.com/reference/surfaces/formatting),
 * they are shown as written and do nothing.
 */
export function slackEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The body a channel receives: Slack's `text`, Discord's `content`, or the event itself. */
export function renderBody(format: Format, event: NotifiedEvent, teamId: string): Record<string, unknown> {
  if (format === "slack") return { text: slackEscape(messageText(event)) };
  if (format === "discord") return { content: clip(messageText(event), DISCORD_LIMIT), allowed_mentions: { parse: [] } };
  return { id: event.id, type: event.type, at: event.at, team_id: teamId, text: messageText(event), data: event.data };
}

/**
 * The wait before the try after `attempt` (1 for the first): the receiver's Retry-After when it
 * gave one, else exponential with equal jitter (between half the ceiling and the ceiling). Not
 * full jitter: a draw near 0 four times over would spend every try within seconds, the very
 * loss the backoff is for. Deployed (cap 300) the four waits are 30–60, 60–120, 120–240 and
 * 150–300 s: 6 to 12 minutes from the first try to the last. Never above `capSeconds`.
 */
export function retryDelaySeconds(attempt: number, capSeconds: number, retryAfterSeconds?: number, random: () => number = Math.random): number {
  if (retryAfterSeconds !== undefined) return Math.min(capSeconds, retryAfterSeconds);
  const ceiling = Math.min(capSeconds, DELIVERY_BACKOFF_BASE_SECONDS * 2 ** Math.max(1, attempt));
  return Math.max(1, Math.min(ceiling, Math.ceil(ceiling / 2 + (random() * ceiling) / 2)));
}

export type AttemptVerdict = { status: "delivered" } | { status: "retry"; reason: string; retryAfterSeconds?: number } | { status: "failed"; reason: string };

/**
 * What an attempt's answer means. 2xx: delivered. 408, 429 and 5xx (and no answer at all) may
 * pass: tried again with backoff until MAX_DELIVERY_ATTEMPTS. Any other 4xx will not (a
 * deleted Slack webhook answers 404 forever): failed at once.
 */
export function judgeAttempt(answer: { status: number; retryAfter?: string | null } | { error: string }, attempt: number): AttemptVerdict {
  if ("status" in answer && answer.status >= 200 && answer.status < 300) return { status: "delivered" };
  const transient = "error" in answer || answer.status === 408 || answer.status === 429 || answer.status >= 500;
  const reason = "error" in answer ? answer.error : `HTTP ${answer.status}`;
  if (!transient) return { status: "failed", reason };
  if (attempt >= MAX_DELIVERY_ATTEMPTS) return { status: "failed", reason: `${reason}; gave up after ${attempt} attempts` };
  const seconds = "status" in answer && answer.retryAfter && /^\d{1,6}$/.test(answer.retryAfter) ? Number(answer.retryAfter) : undefined;
  return { status: "retry", reason, ...(seconds !== undefined ? { retryAfterSeconds: seconds } : {}) };
}
