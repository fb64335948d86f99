import { clientId } from "./events";

/**
 * Sentinels: events an agent could not deliver over HTTPS, written to R2 (through its S3 API)
 * at `callback-sentinels/alpha/{team_id}/{session_id}/{topic_id}/{event_id}.json`. The team
 * comes first because session ids are unique only within a team. A session-level event uses
 * `-` as its topic segment.
 *
 * The team, session and topic segments are ids by the route id rule (`clientId`: letters,
 * digits, `.`, `_`, `-`, starting with a letter or digit, at most 128), written as is. `-`
 * cannot be an id (it does not start with a letter or digit), so it never collides with a
 * topic, and neither can `.` or `..`. An event id follows that rule when it can, written as
 * is; any other event id the callback schema accepts (up to 200 characters, `:` and the
 * like: the runner's own ids grow with the topic id) is written `~` + its base64url (UTF-8),
 * which no id starts with. Either way a key names one event and an event one key.
 */
export const SENTINEL_PREFIX = "callback-sentinels/alpha/";
export const REJECTED_PREFIX = "callback-sentinels/rejected/";
export const SESSION_LEVEL_TOPIC = "-";

export interface SentinelKey {
  team_id: string;
  session_id: string;
  topic_id: string | null;
  event_id: string;
}

export type ParsedSentinelKey = { ok: true; key: SentinelKey } | { ok: false; reason: string };

const SHAPE = "callback-sentinels/alpha/{team}/{session}/{topic or -}/{event}.json";

/** A key segment that is not an id. */
export class SentinelKeyError extends Error {}

/** Why `value` cannot be the `name` of a sentinel key, or null when it is an id. */
export function sentinelIdProblem(name: string, value: string): string | null {
  const parsed = clientId.safeParse(value);
  if (parsed.success) return null;
  const shown = value.length > 140 ? `${value.slice(0, 140)}…` : value;
  return `the ${name} ${JSON.stringify(shown)} is not an id (${parsed.error.issues[0]?.message ?? "invalid"})`;
}

const ENCODED = "~";
/** The callback schema's bound on an event id. */
const MAX_EVENT_ID = 200;

function toBase64Url(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(b64: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(b64)) return null;
  try {
    const binary = atob(b64.replace(/-/g, "+").replace(/_/g, "/"));
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
}

/** The key segment of an event id: as is when it is an id, else encoded. */
export function eventIdSegment(eventId: string): string {
  return clientId.safeParse(eventId).success ? eventId : ENCODED + toBase64Url(eventId);
}

/** The event id a key segment names, or why it names none. */
function eventIdOf(segment: string): { ok: true; id: string } | { ok: false; reason: string } {
  if (!segment.startsWith(ENCODED)) {
    const problem = sentinelIdProblem("event id", segment);
    return problem ? { ok: false, reason: problem } : { ok: true, id: segment };
  }
  const id = fromBase64Url(segment.slice(ENCODED.length));
  if (id === null || id.length === 0 || id.length > MAX_EVENT_ID) return { ok: false, reason: `the event id segment ${JSON.stringify(segment.slice(0, 60))} is not base64url of an event id of 1-${MAX_EVENT_ID} characters` };
  // One key per event: an id that is written as is must not also come encoded.
  if (clientId.safeParse(id).success) return { ok: false, reason: `the event id ${JSON.stringify(id)} is written as is, not encoded` };
  return { ok: true, id };
}

/** Parses a sentinel key, or says why it is not one of the documented shape. */
export function parseSentinelKey(key: string): ParsedSentinelKey {
  if (!key.startsWith(SENTINEL_PREFIX) || !key.endsWith(".json")) return { ok: false, reason: `the key is not ${SHAPE}` };
  const parts = key.slice(SENTINEL_PREFIX.length, -".json".length).split("/");
  if (parts.length !== 4) return { ok: false, reason: `the key is not ${SHAPE}` };
  const [team_id, session_id, topic, segment] = parts as [string, string, string, string];
  const event = eventIdOf(segment);
  const problem =
    sentinelIdProblem("team id", team_id) ??
    sentinelIdProblem("session id", session_id) ??
    (topic === SESSION_LEVEL_TOPIC ? null : sentinelIdProblem("topic id", topic)) ??
    (event.ok ? null : event.reason);
  if (problem || !event.ok) return { ok: false, reason: `the key is not ${SHAPE}: ${problem}` };
  return { ok: true, key: { team_id, session_id, topic_id: topic === SESSION_LEVEL_TOPIC ? null : topic, event_id: event.id } };
}

/** The key of an event's sentinel; throws SentinelKeyError when an id breaks the id rule. */
export function sentinelKey(k: SentinelKey): string {
  const problem =
    sentinelIdProblem("team id", k.team_id) ??
    sentinelIdProblem("session id", k.session_id) ??
    (k.topic_id === null ? null : sentinelIdProblem("topic id", k.topic_id)) ??
    (k.event_id.length === 0 || k.event_id.length > MAX_EVENT_ID ? `the event id is not 1-${MAX_EVENT_ID} characters` : null);
  if (problem) throw new SentinelKeyError(`No sentinel key for this event: ${problem}.`);
  const key = `${SENTINEL_PREFIX}${k.team_id}/${k.session_id}/${k.topic_id ?? SESSION_LEVEL_TOPIC}/${eventIdSegment(k.event_id)}.json`;
  // Long ids of multi-byte characters, encoded, can pass R2's bound, which R2 would answer with
  // an error of its own at the upload: said here, with the numbers, before anything is sent.
  const bytes = new TextEncoder().encode(key).byteLength;
  if (bytes > R2_KEY_LIMIT) throw new SentinelKeyError(`No sentinel key for this event: its key would be ${bytes} bytes, over R2's ${R2_KEY_LIMIT}; use shorter ids.`);
  return key;
}

/** R2's bound on a key, in UTF-8 bytes: a put over it fails (error 10020), every time. */
export const R2_KEY_LIMIT = 1024;
/**
 * Where a rejected sentinel kept under a hashed name (see rejectedKey) came from: its own key
 * does not fit under rejected/.
 */
export const SENTINEL_KEY_META = "sentinel-key";
/** The folder of hashed names, within the team's rejected folder; `~` starts no id. */
const HASHED = "~sha256";

/**
 * Where a sentinel that cannot be applied is kept, with its reason: never lost, never retried.
 * That is its key with `rejected/` in front of `alpha/`, when that fits R2's 1,024 bytes. A
 * sentinel key may itself take nearly all of them (ids of 128 characters, an event id of 200
 * characters of up to 4 bytes each, encoded), and a copy that does not fit would fail to be
 * written every sweep: so a longer one is kept as
 * `callback-sentinels/rejected/alpha/{team}/~sha256/{SHA-256 of its key, hex}.json` (still
 * under its team's folder, which is what GET /v1/sentinels counts; under `alpha/~sha256/`
 * when its team segment is no id), the key itself in the copy's `sentinel-key` metadata.
 */
export async function rejectedKey(key: string): Promise<string> {
  const plain = REJECTED_PREFIX + key.slice("callback-sentinels/".length);
  if (new TextEncoder().encode(plain).byteLength <= R2_KEY_LIMIT) return plain;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  const rest = key.startsWith(SENTINEL_PREFIX) ? key.slice(SENTINEL_PREFIX.length) : "";
  const team = rest.includes("/") ? rest.slice(0, rest.indexOf("/")) : null;
  const folder = team !== null && sentinelIdProblem("team id", team) === null ? `${team}/${HASHED}` : HASHED;
  return `${REJECTED_PREFIX}alpha/${folder}/${hex}.json`;
}

/**
 * Retries. A sentinel that fails for another reason than a refusal (a platform error, or one
 * that fails the same way every time) is tried again on later sweeps, at most MAX_ATTEMPTS
 * times in all, then rejected with the last error. The sweep keeps the count in the object's
 * own metadata (R2 has no in-place metadata update, so it rewrites the object, body and other
 * metadata unchanged) and waits between tries, so a stuck sentinel is skipped by the sweeps in
 * between without being read, and an outage of about an hour and a half rejects nothing.
 */
export const MAX_ATTEMPTS = 5;
export const ATTEMPTS_META = "sweep-attempts";
export const NEXT_ATTEMPT_META = "sweep-next-attempt-at";
export const LAST_ERROR_META = "sweep-last-error";
/**
 * When the sentinel was first uploaded. Each counted try rewrites the object, which moves R2's
 * `uploaded` to the rewrite, while an event without `occurred_at` is to be stamped as accepted
 * when its sentinel was uploaded: so the first rewrite keeps the original time here.
 */
export const UPLOADED_META = "sweep-uploaded-at";

/**
 * When the sentinel was uploaded: UPLOADED_META when it holds an instant no later than the
 * object's own upload (a rewrite only ever moves that later; anything else is not the sweep's
 * and is ignored), else the object's upload. An agent that wrote the metadata itself gains
 * nothing it could not have by giving its event an `occurred_at`.
 */
export function uploadedAt(meta: Record<string, string>, uploaded: Date): Date {
  const raw = meta[UPLOADED_META];
  if (raw === undefined || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(raw)) return uploaded;
  const at = Date.parse(raw);
  return Number.isFinite(at) && at <= uploaded.getTime() ? new Date(at) : uploaded;
}

/** How long to wait after the nth failed try: 1, 4, 16, 64 minutes. */
export function retryDelayMs(attempts: number): number {
  return 60_000 * 4 ** Math.max(0, Math.min(attempts, MAX_ATTEMPTS) - 1);
}

/** Failed tries so far, from metadata an agent may also have written: anything odd counts as 0. */
export function attemptsOf(meta: Record<string, string>): number {
  const raw = meta[ATTEMPTS_META];
  if (raw === undefined || !/^\d{1,3}$/.test(raw)) return 0;
  return Number(raw);
}

/**
 * Whether the sentinel waits for a later sweep. A wait longer than any the sweep sets (e.g.
 * written by the agent) is ignored, so no metadata keeps a sentinel pending forever.
 */
export function isDeferred(meta: Record<string, string>, now: number): boolean {
  const at = Date.parse(meta[NEXT_ATTEMPT_META] ?? "");
  return Number.isFinite(at) && at > now && at <= now + retryDelayMs(MAX_ATTEMPTS);
}
