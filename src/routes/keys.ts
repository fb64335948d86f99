import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, lt, or } from "drizzle-orm";
import type { Db } from "../db/client";
import { dbOf } from "../db/client";
import { apiKeys } from "../db/schema";
import { SCOPE_NAMES, type Scope } from "../domain/scopes";
import { authenticate, requireScope } from "../lib/auth";
import { newId, sha256Hex } from "../lib/crypto";
import { toHex } from "../lib/encoding";
import { keyCache } from "../lib/auth-cache";
import { ApiError } from "../lib/errors";
import { newRouter, problemResponses, security } from "../lib/openapi";
import { decodeCursor, listQuery, listSchema, page } from "../lib/pagination";

export const keyRoutes = newRouter();

export const keySchema = z.object({ id: z.string(), name: z.string(), scopes: z.array(z.enum(SCOPE_NAMES)), prefix: z.string(), created_at: z.string() });
export const createdKeySchema = keySchema.extend({ key: z.string().describe("the key itself: shown once, stored only hashed") });
export type ApiKey = z.infer<typeof keySchema>;
export type CreatedKey = z.infer<typeof createdKeySchema>;

/** Makes a key `sb_<48 hex>`; only its SHA-256 is stored. */
export async function createKey(db: Db, teamId: string, name: string, scopes: Scope[]): Promise<CreatedKey> {
  const key = `sb_${toHex(crypto.getRandomValues(new Uint8Array(24)))}`;
  const row = { id: newId("key"), teamId, name, scopes, hash: await sha256Hex(key), prefix: key.slice(0, 9), createdAt: new Date().toISOString() };
  await db.insert(apiKeys).values(row);
  return { id: row.id, name, scopes, prefix: row.prefix, created_at: row.createdAt, key };
}

keyRoutes.use("/v1/keys", authenticate, requireScope("operator"));
keyRoutes.use("/v1/keys/*", authenticate, requireScope("operator"));

keyRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/keys",
    summary: "Create an API key for the team (the key is shown once)",
    security,
    request: { body: { required: true, content: { "application/json": { schema: z.object({ name: z.string().min(1).max(200), scopes: z.array(z.enum(SCOPE_NAMES)).min(1) }) } } } },
    responses: { 201: { description: "Created", content: { "application/json": { schema: createdKeySchema } } }, ...problemResponses },
  }),
  async (c) => {
    const { name, scopes } = c.req.valid("json");
    return c.json(await createKey(dbOf(c.env), c.get("auth").team_id, name, [...new Set(scopes)]), 201);
  },
);

keyRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/keys",
    summary: "List the team's keys (never the keys themselves)",
    security,
    request: { query: listQuery },
    responses: { 200: { description: "Keys", content: { "application/json": { schema: listSchema(keySchema) } } }, ...problemResponses },
  }),
  async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const after = decodeCursor(cursor, 2) as [string, string] | null;
    const team = c.get("auth").team_id;
    const rows = await dbOf(c.env)
      .select()
      .from(apiKeys)
      .where(and(eq(apiKeys.teamId, team), after ? or(lt(apiKeys.createdAt, after[0]), and(eq(apiKeys.createdAt, after[0]), lt(apiKeys.id, after[1]))) : undefined))
      .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
      .limit(limit + 1)
      .all();
    const items = rows.map((r) => ({ id: r.id, name: r.name, scopes: r.scopes as Scope[], prefix: r.prefix, created_at: r.createdAt }));
    return c.json(page(items, limit, (k) => [k.created_at, k.id]), 200);
  },
);

keyRoutes.openapi(
  createRoute({
    method: "delete",
    path: "/v1/keys/{id}",
    summary: "Delete a key; its cookies and stream tokens stop working too, and streams open with it end within a minute",
    security,
    request: { params: z.object({ id: z.string().max(200) }) },
    responses: { 204: { description: "Deleted" }, ...problemResponses },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const deleted = await dbOf(c.env)
      .delete(apiKeys)
      .where(and(eq(apiKeys.id, id), eq(apiKeys.teamId, c.get("auth").team_id)))
      .returning({ id: apiKeys.id })
      .all();
    if (deleted.length === 0) throw new ApiError("not_found", `No key ${id}.`);
    keyCache.forget(id);
    return c.body(null, 204);
  },
);
