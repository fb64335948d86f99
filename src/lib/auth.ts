import { eq } from "drizzle-orm";
import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { type Db, dbOf } from "../db/client";
import { apiKeys } from "../db/schema";
import { SCOPES, type Scope } from "../domain/scopes";
import type { AppEnv, AuthContext } from "./app-env";
import { keyCache } from "./auth-cache";
import { sha256Hex, timingSafeEqual, verifyToken } from "./crypto";
import { ApiError } from "./errors";

export const SESSION_COOKIE = "sb_session";
export const STREAM_TOKEN_TTL_MS = 10 * 60 * 1000;
export const SESSION_TTL_MS = 12 * 3600 * 1000;

export interface StreamTokenPayload {
  team: string;
  key: string;
  path: string;
  exp: number;
}

export interface SessionCookiePayload {
  team: string;
  key: string;
  exp: number;
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
    const auth = await findKey(db, { hash: await sha256Hex(match[1]) });
    if (!auth) throw new ApiError("unauthorized", "The API key is not valid.");
    c.set("auth", auth);
    return next();
  }
  const token = c.req.query("access_token");
  if (token) {
    const payload = await verifyToken<StreamTokenPayload>(c.env.SECRETS_KEY, "stream", token);
    if (!payload || c.req.method !== "GET" || payload.path !== new URL(c.req.url).pathname) {
      throw new ApiError("unauthorized", "The stream token is not valid for this path, or has expired.");
    }
    keyId = payload.key;
    teamId = payload.team;
  } else {
    const cookie = getCookie(c, SESSION_COOKIE);
    if (!cookie) throw new ApiError("unauthorized", "Send `Authorization: Bearer <api key>`.");
    const payload = await verifyToken<SessionCookiePayload>(c.env.SECRETS_KEY, "session", cookie);
    if (!payload) throw new ApiError("unauthorized", "The session has expired; sign in again.");
    keyId = payload.key;
    teamId = payload.team;
  }
  // Tokens and cookies stand for a key: deleting the key ends them too (src/lib/auth-cache.ts).
  const auth = await findKey(db, { id: keyId });
  if (!auth || auth.team_id !== teamId) throw new ApiError("unauthorized", "The key behind this token was deleted.");
  c.set("auth", auth);
  return next();
});

/**
 * Whether the key behind `auth` still exists: an open stream asks (src/lib/revocable-stream.ts).
 * Read from D1, not the key cache, which another isolate's delete leaves stale for 30 s; the
 * answer is shared for KEY_CHECK_SHARE_MS by every stream of this isolate on the same key, so a
 * thousand watchers on one key cost one read, not a thousand.
 */
export const KEY_CHECK_SHARE_MS = 10_000;
const keyChecks = new Map<string, { at: number; exists: Promise<boolean> }>();
export async function keyExists(env: Env, auth: AuthContext, shareMs = KEY_CHECK_SHARE_MS, now = Date.now()): Promise<boolean> {
  const recent = keyChecks.get(auth.key_id);
  if (recent && now - recent.at < shareMs) return recent.exists;
  const exists = dbOf(env)
    .select({ teamId: apiKeys.teamId })
    .from(apiKeys)
    .where(eq(apiKeys.id, auth.key_id))
    .get()
    .then((row) => row !== undefined && row.teamId === auth.team_id);
  keyChecks.set(auth.key_id, { at: now, exists });
  // A failed read is not remembered: the next check asks again.
  exists.catch(() => keyChecks.delete(auth.key_id));
  if (keyChecks.size > 10_000) for (const [id, c] of keyChecks) if (now - c.at >= KEY_CHECK_SHARE_MS) keyChecks.delete(id);
  return exists;
}

/** A key by its hash or id, from this isolate's cache or D1; null when there is none. */
async function findKey(db: Db, by: { hash: string } | { id: string }): Promise<AuthContext | null> {
  const cached = "hash" in by ? keyCache.byHash(by.hash) : keyCache.byId(by.id);
  if (cached) return cached;
  const row = await db
    .select()
    .from(apiKeys)
    .where("hash" in by ? eq(apiKeys.hash, by.hash) : eq(apiKeys.id, by.id))
    .get();
  if (!row) return null;
  const auth: AuthContext = { team_id: row.teamId, key_id: row.id, scopes: row.scopes as Scope[] };
  keyCache.remember(row.hash, auth);
  return auth;
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

/** The deployment's admin token, for creating teams. */
export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  const match = /^Bearer\s+(\S+)$/i.exec(c.req.header("Authorization") ?? "");
  if (!c.env.ADMIN_TOKEN || !match?.[1] || !timingSafeEqual(match[1], c.env.ADMIN_TOKEN)) {
    throw new ApiError("unauthorized", "This needs the deployment's ADMIN_TOKEN.");
  }
  return next();
});
