import { eq } from "drizzle-orm";
import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { type Db, dbOf } from "../db/client";
import { apiKeys } from "../db/schema";
import { SCOPES, type Scope } from "../domain/scopes";
import type { AppEnv, AuthContext } from "./app-env";
import type { Context } from "hono";
import { type KeyRecord, keyCache } from "./auth-cache";
import { adminTokenProblem, secretEquals, sha256Hex, verifyToken } from "./crypto";
import { ApiError } from "./errors";

export const SESSION_COOKIE = "sb_session";
export const STREAM_TOKEN_TTL_MS = 10 * 60 * 1000;
export const SESSION_TTL_MS = 12 * 3600 * 1000;

export interface StreamTokenPayload {
  team: string;
  key: string;
  path: string;
  exp: number;
  /** Minted with a sign-in cookie: that session's epoch, so signing out ends the token too. */
  epoch?: number;
}

export interface SessionCookiePayload {
  team: string;
  key: string;
  exp: number;
  /** The key's session epoch at sign-in (absent in cookies issued before epochs: 0). */
  epoch?: number;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * CSRF: a browser sends the sign-in cookie with any request to this host, including one a
 * page of another origin makes (a same-site sibling host is not stopped by SameSite=Strict,
 * and a POST with no body needs no CORS preflight). So a request that may change something
 * and is authenticated by the cookie must show it comes from this origin: an `Origin` equal to
 * the request's, or `Sec-Fetch-Site: same-origin`, and neither header saying otherwise. A
 * client sending neither (not a browser) is refused too: such clients send a Bearer key.
 */
export function refuseCrossOriginCookieWrite(c: Context<AppEnv>): void {
  if (SAFE_METHODS.has(c.req.method)) return;
  const origin = c.req.header("Origin");
  const site = c.req.header("Sec-Fetch-Site");
  const originOk = origin === undefined || origin === new URL(c.req.url).origin;
  const siteOk = site === undefined || site === "same-origin";
  if (originOk && siteOk && (origin !== undefined || site !== undefined)) return;
  throw new ApiError(
    "forbidden",
    "A change made with the sign-in cookie must come from this origin's own pages (Origin or Sec-Fetch-Site: same-origin); other clients send `Authorization: Bearer <api key>`.",
  );
}

/**
 * Who is calling: a Bearer API key, the browser's signed session cookie, or a stream token
 * valid for one stream path (EventSource cannot send headers). Every later query is scoped
 * to `auth.team_id`.
 */
export const authenticate = createMiddleware<AppEnv>(async (c, next) => {
  const db = dbOf(c.env);
  const header = c.req.header("Authorization");
  let keyId: string | null = null;
  let teamId: string | null = null;
  if (header) {
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) throw new ApiError("unauthorized", "Authorization must be `Bearer <api key>`.");
    const key = await findKey(db, { hash: await sha256Hex(match[1]) });
    if (!key) throw new ApiError("unauthorized", "The API key is not valid.");
    c.set("auth", key.auth);
    return next();
  }
  const token = c.req.query("access_token");
  let epoch: number | undefined;
  if (token) {
    const payload = await verifyToken<StreamTokenPayload>(c.env.SECRETS_KEY, "stream", token);
    if (!payload || c.req.method !== "GET" || payload.path !== new URL(c.req.url).pathname) {
      throw new ApiError("unauthorized", "The stream token is not valid for this path, or has expired.");
    }
    keyId = payload.key;
    teamId = payload.team;
    epoch = payload.epoch;
  } else {
    const cookie = getCookie(c, SESSION_COOKIE);
    if (!cookie) throw new ApiError("unauthorized", "Send `Authorization: Bearer <api key>`.");
    const payload = await verifyToken<SessionCookiePayload>(c.env.SECRETS_KEY, "session", cookie);
    if (!payload) throw new ApiError("unauthorized", "The session has expired; sign in again.");
    refuseCrossOriginCookieWrite(c);
    keyId = payload.key;
    teamId = payload.team;
    epoch = payload.epoch ?? 0;
  }
  // Tokens and cookies stand for a key: deleting the key ends them too (src/lib/auth-cache.ts),
  // and signing out ends the cookies (and their stream tokens) signed in before it.
  let key = await findKey(db, { id: keyId });
  // A cookie signed in after a sign-out another isolate handled carries an epoch newer than
  // this isolate's cached key: the cache is what is stale, so read the key again (a cookie
  // signed in before the sign-out, an older epoch, is refused from the cache as it stands).
  if (key && epoch !== undefined && epoch > key.sessionEpoch) key = await findKey(db, { id: keyId }, { fresh: true });
  if (!key || key.auth.team_id !== teamId) throw new ApiError("unauthorized", "The key behind this token was deleted.");
  if (epoch !== undefined && epoch !== key.sessionEpoch) throw new ApiError("unauthorized", "This browser session was signed out; sign in again.");
  c.set("auth", epoch === undefined ? key.auth : { ...key.auth, session_epoch: epoch });
  return next();
});

/**
 * Whether the key behind `auth` still exists (and, for a stream opened with the sign-in cookie
 * or a token minted with one, whether that session is still signed in): an open stream asks
 * (src/lib/revocable-stream.ts).
 * Read from D1, not the key cache, which another isolate's delete leaves stale for 30 s; the
 * answer is shared for KEY_CHECK_SHARE_MS by every stream of this isolate on the same key, so a
 * thousand watchers on one key cost one read, not a thousand.
 */
export const KEY_CHECK_SHARE_MS = 10_000;
type KeyRow = { teamId: string; sessionEpoch: number } | undefined;
const keyChecks = new Map<string, { at: number; row: Promise<KeyRow> }>();
export async function keyExists(env: Env, auth: AuthContext, shareMs = KEY_CHECK_SHARE_MS, now = Date.now()): Promise<boolean> {
  const holds = (row: KeyRow) => row !== undefined && row.teamId === auth.team_id && (auth.session_epoch === undefined || row.sessionEpoch === auth.session_epoch);
  const recent = keyChecks.get(auth.key_id);
  if (recent && now - recent.at < shareMs) return recent.row.then(holds);
  const row = dbOf(env).select({ teamId: apiKeys.teamId, sessionEpoch: apiKeys.sessionEpoch }).from(apiKeys).where(eq(apiKeys.id, auth.key_id)).get();
  keyChecks.set(auth.key_id, { at: now, row });
  // A failed read is not remembered: the next check asks again.
  row.catch(() => keyChecks.delete(auth.key_id));
  if (keyChecks.size > 10_000) for (const [id, c] of keyChecks) if (now - c.at >= KEY_CHECK_SHARE_MS) keyChecks.delete(id);
  return row.then(holds);
}

/** A key by its hash or id, from this isolate's cache (unless `fresh`) or D1; null when there is none. */
async function findKey(db: Db, by: { hash: string } | { id: string }, { fresh = false } = {}): Promise<KeyRecord | null> {
  const cached = fresh ? undefined : "hash" in by ? keyCache.byHash(by.hash) : keyCache.byId(by.id);
  if (cached) return cached;
  const row = await db
    .select()
    .from(apiKeys)
    .where("hash" in by ? eq(apiKeys.hash, by.hash) : eq(apiKeys.id, by.id))
    .get();
  if (!row) return null;
  const key: KeyRecord = { auth: { team_id: row.teamId, key_id: row.id, scopes: row.scopes as Scope[] }, sessionEpoch: row.sessionEpoch };
  keyCache.remember(row.hash, key);
  return key;
}

/** Allows the request when the caller's key has a scope that grants `needed`. */
export function requireScope(needed: Scope) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const auth = c.get("auth");
    if (!auth) throw new ApiError("unauthorized", "Send `Authorization: Bearer <api key>`.");
    if (!auth.scopes.some((s) => (SCOPES[s].grants as readonly Scope[]).includes(needed))) {
      throw new ApiError("forbidden", `This needs a key with the ${needed} scope (or one that includes it).`);
    }
    return next();
  });
}

/**
 * The deployment's admin token, for creating teams. Without one (a deleted secret, a
 * .dev.vars lacking it) admin routes answer 503 rather than 401: nothing could pass.
 */
export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  const problem = adminTokenProblem(c.env.ADMIN_TOKEN);
  if (problem) throw new ApiError("unavailable", `This deployment is misconfigured: ${problem}, so admin routes are off until it is set.`);
  const match = /^Bearer\s+(\S+)$/i.exec(c.req.header("Authorization") ?? "");
  if (!match?.[1] || !(await secretEquals(match[1], c.env.ADMIN_TOKEN))) {
    throw new ApiError("unauthorized", "This needs the deployment's ADMIN_TOKEN.");
  }
  return next();
});
