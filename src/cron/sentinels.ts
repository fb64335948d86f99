import { eq } from "drizzle-orm";
import { JSON_BODY_LIMIT } from "../app";
import { dbOf } from "../db/client";
import { existingSessionIds } from "../db/index-rows";
import { teams } from "../db/schema";
import { eventSchema, stampAccepted } from "../domain/events";
import { MAX_JSON_DEPTH, unfitJsonAt } from "../domain/json";
import {
  ATTEMPTS_META,
  LAST_ERROR_META,
  MAX_ATTEMPTS,
  NEXT_ATTEMPT_META,
  REJECTED_PREFIX,
  SENTINEL_KEY_META,
  SENTINEL_PREFIX,
  type SentinelKey,
  attemptsOf,
  isDeferred,
  parseSentinelKey,
  rejectedKey,
  retryDelayMs,
  UPLOADED_META,
  uploadedAt,
} from "../domain/sentinel";
import { decryptSecret, secretsKeyProblem } from "../lib/crypto";
import { utf8 } from "../lib/encoding";
import { log } from "../lib/log";
import { verifyPayload } from "../lib/standard-webhooks";
import { applyCallbackMessage } from "../queue/consumer";

/** At most this many sentinels read a sweep (across all teams), so one cron run stays well inside its time limit. */
export const SWEEP_LIMIT = 500;
/** And no new one started after this long: the rest wait for the next minute's sweep. */
export const SWEEP_TIME_BUDGET_MS = 20_000;
/** Keys listed a team a sweep (waiting ones are listed, not read): a bound on list calls. */
const TEAM_LIST_LIMIT = 10_000;
/** Teams listed a sweep (1,000 a page). */
const TEAM_PAGES = 10;
/** The most metadata a sentinel may carry: the sweep adds its own, under R2's 8 KiB. */
const METADATA_LIMIT = 4096;
/** R2's bound on an object's custom metadata. */
const R2_METADATA_LIMIT = 8192;
/** Reasons and errors kept in metadata are cut here. */
const MESSAGE_LIMIT = 1000;

export interface SweepReport {
  /** Applied and deleted. */
  applied: number;
  /** Moved to rejected/: refused, or failed MAX_ATTEMPTS times. */
  rejected: number;
  /** Failed this sweep (not refused): tried again on a later one. */
  retrying: number;
  /** Waiting after a failed try: not read this sweep. */
  deferred: number;
  /** Gone or changed under this sweep (another sweep took it), or R2 failed to read it or count a try in it. */
  skipped: number;
}

export interface SweepOptions {
  /** Sentinels read at most (default SWEEP_LIMIT). */
  limit?: number;
  /** Wall time after which no sentinel is started (default SWEEP_TIME_BUDGET_MS). */
  timeBudgetMs?: number;
  /** The time retries are scheduled from and compared with (tests move it). */
  now?: number;
}

/** A sentinel the sweep will not apply, whatever happens later: moved to rejected/. */
class Refused extends Error {}

/**
 * Applies every pending sentinel through the same path as a callback (the hubs dedupe by
 * event id, so an event that also arrived over HTTPS, or a sentinel two sweeps see at once,
 * is applied once), and deletes each only after it was applied.
 *
 * A sentinel over the HTTPS path's limits (1 MiB, 32 levels of nesting, the event schema), with
 * a bad key or signature, is moved to `callback-sentinels/rejected/` with its reason. One that
 * fails otherwise is retried on later sweeps, at most MAX_ATTEMPTS times (src/domain/sentinel.ts),
 * then moved there too with its last error.
 *
 * Teams take turns, one sentinel each, so a team's stuck sentinels never hold up another's;
 * the team that goes first rotates every minute; each sentinel is read at most once a sweep.
 */
export async function sweepSentinels(env: Env, options: SweepOptions = {}): Promise<SweepReport> {
  const report: SweepReport = { applied: 0, rejected: 0, retrying: 0, deferred: 0, skipped: 0 };
  const limit = options.limit ?? SWEEP_LIMIT;
  const deadline = Date.now() + (options.timeBudgetMs ?? SWEEP_TIME_BUDGET_MS);
  const now = options.now ?? Date.now();
  const state: SweepState = { env, now, report, secrets: new Map() };

  const lanes = await teamLanes(env.BUCKET);
  const first = lanes.length === 0 ? 0 : Math.floor(now / 60_000) % lanes.length;
  let active = [...lanes.slice(first), ...lanes.slice(0, first)];
  let read = 0;
  while (active.length > 0 && read < limit && Date.now() < deadline) {
    const still: Lane[] = [];
    for (const lane of active) {
      if (read >= limit || Date.now() >= deadline) {
        still.push(lane);
        continue;
      }
      const listed = await nextDue(lane, state).catch((error) => {
        log("warn", "sentinel listing failed", { prefix: lane.prefix, error: messageOf(error) });
        return null;
      });
      if (!listed) continue; // this team is done for this sweep
      still.push(lane);
      read += 1;
      try {
        await sweepOne(state, listed.key);
      } catch (error) {
        // R2 failed reading it or counting a failed try in it (a failed move to rejected/ is
        // counted, see rejectOrRetry): nothing was lost, the next sweep sees it again.
        log("warn", "sentinel sweep failed on R2", { key: listed.key, error: messageOf(error) });
        report.skipped += 1;
      }
    }
    active = still;
  }
  return report;
}

interface SweepState {
  env: Env;
  now: number;
  report: SweepReport;
  /** Each team's signing secret, looked up once a sweep (a failure too: it fails its sentinels alike). */
  secrets: Map<string, Promise<string | null>>;
}

/** One team's sentinels in key order, listed a page at a time as the sweep reaches them. */
interface Lane {
  prefix: string;
  buffer: R2Object[];
  cursor?: string;
  /** No more pages (or the listing bound was reached). */
  listedAll: boolean;
  listed: number;
}

/**
 * A lane per team prefix under alpha/, and one for objects directly under it (no team
 * folder: rejected for their key).
 */
async function teamLanes(bucket: R2Bucket): Promise<Lane[]> {
  const lanes: Lane[] = [];
  const loose: R2Object[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await bucket.list({ prefix: SENTINEL_PREFIX, delimiter: "/", cursor, limit: 1000, include: ["customMetadata"] });
    for (const prefix of page.delimitedPrefixes) lanes.push({ prefix, buffer: [], listedAll: false, listed: 0 });
    loose.push(...page.objects);
    cursor = page.truncated ? page.cursor : undefined;
    pages += 1;
  } while (cursor && pages < TEAM_PAGES);
  if (loose.length > 0) lanes.push({ prefix: SENTINEL_PREFIX, buffer: loose, listedAll: true, listed: loose.length });
  return lanes;
}

/** The lane's next sentinel that is not waiting for a retry, or null when it has no more this sweep. */
async function nextDue(lane: Lane, state: SweepState): Promise<R2Object | null> {
  for (;;) {
    const next = lane.buffer.shift();
    if (next) {
      if (isDeferred(next.customMetadata ?? {}, state.now)) {
        state.report.deferred += 1;
        continue;
      }
      return next;
    }
    if (lane.listedAll) return null;
    const page = await state.env.BUCKET.list({ prefix: lane.prefix, cursor: lane.cursor, limit: 1000, include: ["customMetadata"] });
    lane.buffer = page.objects;
    lane.listed += page.objects.length;
    lane.cursor = page.truncated ? page.cursor : undefined;
    lane.listedAll = !page.truncated || lane.listed >= TEAM_LIST_LIMIT;
  }
}

async function sweepOne(state: SweepState, key: string): Promise<void> {
  const { env, report, now } = state;
  const object = await env.BUCKET.get(key);
  if (!object) {
    report.skipped += 1; // another sweep took it
    return;
  }
  const meta = object.customMetadata ?? {};
  if (isDeferred(meta, now)) {
    // Another sweep failed on it since it was listed.
    await object.body.cancel();
    report.deferred += 1;
    return;
  }

  // Refused before the body is read: the key, the size (the HTTPS path's body limit), the metadata.
  const parsedKey = parseSentinelKey(key);
  if (!parsedKey.ok) return rejectOrRetry(state, object, null, meta, parsedKey.reason);
  if (object.size > JSON_BODY_LIMIT) return rejectOrRetry(state, object, null, meta, `the body is ${object.size} bytes, over the ${JSON_BODY_LIMIT}-byte limit of a JSON body`);
  const metaBytes = metadataBytes(meta);
  if (metaBytes > METADATA_LIMIT) return rejectOrRetry(state, object, null, meta, `its metadata is ${metaBytes} bytes, over ${METADATA_LIMIT}`);

  const bytes = await object.arrayBuffer();
  try {
    const event = await validate(state, parsedKey.key, new Uint8Array(bytes), meta);
    // A sentinel's event without occurred_at occurred no later than its upload (not the sweep,
    // nor a rewrite that counted a failed try: see UPLOADED_META).
    const events = stampAccepted([event], uploadedAt(meta, object.uploaded));
    await applyCallbackMessage(env, { kind: "callbacks", team_id: parsedKey.key.team_id, request_id: `sentinel:${key}`, events });
    await env.BUCKET.delete(key);
    report.applied += 1;
    return;
  } catch (error) {
    if (error instanceof Refused) return rejectOrRetry(state, object, bytes, meta, error.message);
    if (error instanceof KeyUnavailable) {
      log("error", "sentinel deferred", { key, reason: error.message });
      report.deferred += 1;
      return;
    }
    const attempts = attemptsOf(meta) + 1;
    const message = cut(messageOf(error));
    if (attempts >= MAX_ATTEMPTS) return rejectOrRetry(state, object, bytes, { ...meta, [ATTEMPTS_META]: String(attempts) }, `failed ${attempts} times; the last error: ${message}`);
    log("warn", "sentinel not applied; will retry", { key, attempts, error: message });
    return retryLater(state, object, bytes, attempts, message);
  }
}

/**
 * Rejects the sentinel; when R2 fails to move it, that is a failed try like any other, counted
 * in the object: otherwise the same move would be tried, and fail alike, every sweep, the
 * sentinel pending forever. At MAX_ATTEMPTS and beyond it waits the longest wait between moves.
 * `bytes` is the body when it was read (else it is read again to count the try).
 */
async function rejectOrRetry(state: SweepState, object: R2ObjectBody, bytes: ArrayBuffer | null, meta: Record<string, string>, reason: string): Promise<void> {
  try {
    await reject(state, object, bytes ?? object.body, meta, reason);
  } catch (error) {
    const attempts = Math.min(attemptsOf(object.customMetadata ?? {}) + 1, MAX_ATTEMPTS);
    const message = cut(`moving it to rejected/ failed: ${messageOf(error)}`);
    log("warn", "sentinel not rejected; will retry", { key: object.key, attempts, reason: cut(reason), error: message });
    await retryLater(state, object, bytes, attempts, message);
  }
}

/**
 * Counts a failed try in the object itself: the same bytes, the same metadata (its signature
 * included) plus the count, when to try next, why, and when it was first uploaded. Only while
 * the object still holds the body read (etagMatches): a sentinel another sweep applied or
 * rejected (removed) is never brought back, and one the agent replaced is never overwritten.
 * Another sweep's rewrite of the same body is not told apart (the etag is the body's MD5, and
 * R2, as HTTP, ignores an upload-time condition next to a matching etag), so two sweeps failing
 * on it at once may both write the same count: at most one try more than MAX_ATTEMPTS.
 */
async function retryLater(state: SweepState, object: R2Object, bytes: ArrayBuffer | null, attempts: number, message: string): Promise<void> {
  const { env, report, now } = state;
  let body: ArrayBuffer | ReadableStream | null = bytes;
  if (body === null) {
    // Its body went into a move that failed (it was not read: it may be far over 1 MiB), so
    // it is streamed again, only while it is still the object that failed.
    const again = await env.BUCKET.get(object.key, { onlyIf: { etagMatches: object.etag } });
    if (!again || !("body" in again)) {
      report.skipped += 1;
      return;
    }
    body = again.body;
  }
  const meta = object.customMetadata ?? {};
  const rewritten = await env.BUCKET.put(object.key, body, {
    httpMetadata: object.httpMetadata,
    customMetadata: {
      ...meta,
      [UPLOADED_META]: uploadedAt(meta, object.uploaded).toISOString(),
      [ATTEMPTS_META]: String(attempts),
      [NEXT_ATTEMPT_META]: new Date(now + retryDelayMs(attempts)).toISOString(),
      [LAST_ERROR_META]: message,
    },
    onlyIf: { etagMatches: object.etag },
  });
  if (rewritten) report.retrying += 1;
  else report.skipped += 1;
}

/**
 * Moves a sentinel to rejected/ with its reason (the body as it was), then deletes it. The copy
 * always fits R2's limits, so only a failing R2 stops it: its key (rejectedKey) and its
 * metadata, whose own part (the reason, when, the key when the copy's name is hashed) is at
 * most about 5 KB, and the sentinel's metadata is kept (signature included) only when the two
 * fit together.
 */
async function reject(state: SweepState, object: R2Object, body: ReadableStream | ArrayBuffer, meta: Record<string, string>, reason: string): Promise<void> {
  const { env, report } = state;
  const target = await rejectedKey(object.key);
  const ours: Record<string, string> = { reason: cut(reason), rejected_at: new Date(state.now).toISOString() };
  if (target !== REJECTED_PREFIX + object.key.slice("callback-sentinels/".length)) ours[SENTINEL_KEY_META] = object.key;
  const customMetadata = metadataSize({ ...meta, ...ours }) <= R2_METADATA_LIMIT ? { ...meta, ...ours } : ours;
  await env.BUCKET.put(target, body, { httpMetadata: object.httpMetadata, customMetadata });
  await env.BUCKET.delete(object.key);
  log("warn", "sentinel rejected", { key: object.key, reason: ours.reason });
  report.rejected += 1;
}

/** The same checks, in the same order, as `POST /v1/callbacks` (src/routes/callbacks.ts). */
async function validate(state: SweepState, key: SentinelKey, raw: Uint8Array, meta: Record<string, string>) {
  const { env } = state;
  const team = key.team_id;
  let secret = state.secrets.get(team);
  if (!secret) {
    secret = signingSecret(env, team);
    state.secrets.set(team, secret);
  }
  const signing = await secret;
  if (signing) {
    // No time window: a sentinel is swept late by design. The event id still makes it once-only.
    const verdict = await verifyPayload(signing, { id: meta["webhook-id"] ?? null, timestamp: meta["webhook-timestamp"] ?? null, signature: meta["webhook-signature"] ?? null }, raw, 0, null);
    // A stored secret with no usable key fails every request alike: the team's configuration
    // to fix (HTTPS answers 503), so retried like a platform failure, not refused.
    if (!verdict.ok && (verdict.reason as string) === "unusable_secret") throw new Error("the team's signing secret carries no usable key");
    if (!verdict.ok) throw new Refused(`signature: ${verdict.reason}`);
  }
  let body: unknown;
  try {
    // Decoded only now: the signature was checked over the bytes (a BOM decoding drops included).
    body = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    throw new Refused("the body is not JSON");
  }
  // Before anything recursive (zod, structured clone) sees it, as over HTTPS.
  const unfit = unfitJsonAt(body);
  if (unfit !== null) throw new Refused(unfit.rule === "depth" ? `the JSON body nests deeper than ${MAX_JSON_DEPTH} levels (at ${unfit.path})` : `${unfit.message} (at ${unfit.path})`);
  const parsed = eventSchema.safeParse(body);
  if (!parsed.success) throw new Refused(`invalid event: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const event = parsed.data;
  if (event.id !== key.event_id || event.session_id !== key.session_id || (event.topic_id ?? null) !== key.topic_id) {
    throw new Refused("the event's id, session_id or topic_id does not match its key");
  }
  const known = await existingSessionIds(dbOf(env), team, [event.session_id]);
  if (!known.has(event.session_id)) throw new Refused(`no session ${event.session_id} in team ${team}`);
  return event;
}

/** The team's signing secret, null when it signs nothing; Refused when there is no such team. */
async function signingSecret(env: Env, team: string): Promise<string | null> {
  const row = await dbOf(env).select({ signingSecret: teams.signingSecret }).from(teams).where(eq(teams.id, team)).get();
  if (!row) throw new Refused(`no team ${team}`);
  if (!row.signingSecret) return null;
  const keyProblem = secretsKeyProblem(env.SECRETS_KEY);
  if (keyProblem) throw new KeyUnavailable(keyProblem);
  return await decryptSecret(env.SECRETS_KEY, row.signingSecret, `${team}:signing_secret`);
}

/**
 * No usable SECRETS_KEY: the deployment's fault, not the sentinel's. A signed team's sentinels
 * wait untouched (no try counted, so none is rejected for it) until the key is set again.
 */
class KeyUnavailable extends Error {}

/**
 * Metadata's size as R2 may count it: the larger of its UTF-8 bytes (what R2 documents) and
 * what the local emulation counts (two bytes a character in a string with any beyond Latin-1),
 * so a copy the sweep thinks fits fits in both.
 */
function metadataSize(meta: Record<string, string>): number {
  let n = 0;
  for (const s of Object.entries(meta).flat()) n += Math.max(utf8.encode(s).byteLength, /[^\u0000-\u00ff]/.test(s) ? 2 * s.length : s.length);
  return n;
}

function metadataBytes(meta: Record<string, string>): number {
  let n = 0;
  for (const [k, v] of Object.entries(meta)) n += utf8.encode(k).byteLength + utf8.encode(v).byteLength;
  return n;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? `${error.name === "Error" ? "" : `${error.name}: `}${error.message}` : String(error);
}

function cut(s: string): string {
  return s.length > MESSAGE_LIMIT ? `${s.slice(0, MESSAGE_LIMIT)}…` : s;
}
