import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { deleteCookie, setCookie } from "hono/cookie";
import { dbOf } from "../db/client";
import { apiKeys } from "../db/schema";
import { SESSION_COOKIE, SESSION_TTL_MS, STREAM_TOKEN_TTL_MS, authenticate, requireScope } from "../lib/auth";
import { sha256Hex, signToken } from "../lib/crypto";
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
    setCookie(c, SESSION_COOKIE, await signToken(c.env.SECRETS_KEY, "session", { team: row.teamId, key: row.id, exp }), {
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
  createRoute({ method: "delete", path: "/v1/auth/session", summary: "Sign out", responses: { 204: { description: "Signed out" } } }),
  async (c) => {
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
    const token = await signToken(c.env.SECRETS_KEY, "stream", { team: auth.team_id, key: auth.key_id, path, exp });
    return c.json({ token, expires_at: new Date(exp).toISOString() }, 201);
  },
);
