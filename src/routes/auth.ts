import { createRoute, z } from "@hono/zod-openapi";
import { and, eq, sql } from "drizzle-orm";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { dbOf } from "../db/client";
import { apiKeys } from "../db/schema";
import { SESSION_COOKIE, SESSION_TTL_MS, STREAM_TOKEN_TTL_MS, type SessionCookiePayload, type StreamTokenPayload, authenticate, refuseCrossOriginCookieWrite, requireScope } from "../lib/auth";
import { keyCache } from "../lib/auth-cache";
import { sha256Hex, signToken, verifyToken } from "../lib/crypto";
import { ApiError } from "../lib/errors";
import { newRouter, problemResponses, security } from "../lib/openapi";
import { isStreamPath } from "./streams";

export const authRoutes = newRouter();

authRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/auth/session",
    summary: "Sign a browser in: sets an HttpOnly, Secure, SameSite=Strict session cookie",
    request: { body: { required: true, content: { "application/json": { schema: z.object({ api_key: z.string().min(1).max(200) }) } } } },
    responses: { 200: { description: "Signed in", content: { "application/json": { schema: z.object({ team_id: z.string(), expires_at: z.string() }) } } }, ...problemResponses },
  }),
  async (c) => {
    const { api_key } = c.req.valid("json");
    const row = await dbOf(c.env).select().from(apiKeys).where(eq(apiKeys.hash, await sha256Hex(api_key))).get();
    if (!row) throw new ApiError("unauthorized", "The API key is not valid.");
    const exp = Date.now() + SESSION_TTL_MS;
    const payload: SessionCookiePayload = { team: row.teamId, key: row.id, exp, epoch: row.sessionEpoch };
    setCookie(c, SESSION_COOKIE, await signToken(c.env.SECRETS_KEY, "session", { ...payload }), {
      httpOnly: true,
      secure: true,
      sameSite: "Strict",
      path: "/",
      maxAge: Math.floor(SESSION_TTL_MS / 1000),
    });
    return c.json({ team_id: row.teamId, expires_at: new Date(exp).toISOString() }, 200);
  },
);

authRoutes.openapi(
  createRoute({
    method: "delete",
    path: "/v1/auth/session",
    summary: "Sign out: clears the cookie and ends, server-side, every browser session signed in with the same key before now",
    responses: {
      204: { description: "Signed out" },
      403: { description: "The cookie came on a request from another origin (problem+json)" },
      503: { description: "SECRETS_KEY is missing or too short (problem+json)" },
    },
  }),
  async (c) => {
    const cookie = getCookie(c, SESSION_COOKIE);
    const payload = cookie ? await verifyToken<SessionCookiePayload>(c.env.SECRETS_KEY, "session", cookie) : null;
    if (payload) {
      refuseCrossOriginCookieWrite(c);
      // The cookie is stateless: clearing it in this browser would leave a copy of it valid
      // until it expires. Moving the key's epoch on ends it (and its stream tokens) everywhere;
      // the epoch is per key, so other browsers signed in with the same key are signed out too.
      const epoch = payload.epoch ?? 0;
      await dbOf(c.env)
        .update(apiKeys)
        .set({ sessionEpoch: sql`${apiKeys.sessionEpoch} + 1` })
        .where(and(eq(apiKeys.id, payload.key), eq(apiKeys.teamId, payload.team), eq(apiKeys.sessionEpoch, epoch)));
      keyCache.forget(payload.key);
    }
    deleteCookie(c, SESSION_COOKIE, { path: "/", secure: true });
    return c.body(null, 204);
  },
);

authRoutes.use("/v1/stream-tokens", authenticate, requireScope("read"));
authRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/stream-tokens",
    summary: "A token for one stream path, valid 10 minutes, passed as ?access_token=",
    security,
    request: { body: { required: true, content: { "application/json": { schema: z.object({ path: z.string().min(1).max(600) }) } } } },
    responses: { 201: { description: "Token", content: { "application/json": { schema: z.object({ token: z.string(), expires_at: z.string() }) } } }, ...problemResponses },
  }),
  async (c) => {
    const { path } = c.req.valid("json");
    if (!isStreamPath(path)) throw new ApiError("validation", "The path is not a stream path.", [{ path: "path", message: "must be a stream path such as /v1/sessions/{sid}/stream" }]);
    const auth = c.get("auth");
    const exp = Date.now() + STREAM_TOKEN_TTL_MS;
    const payload: StreamTokenPayload = { team: auth.team_id, key: auth.key_id, path, exp };
    // Minted with the sign-in cookie: it ends when that session is signed out.
    if (auth.session_epoch !== undefined) payload.epoch = auth.session_epoch;
    const token = await signToken(c.env.SECRETS_KEY, "stream", { ...payload });
    return c.json({ token, expires_at: new Date(exp).toISOString() }, 201);
  },
);
