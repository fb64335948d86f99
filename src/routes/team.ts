import { createRoute, z } from "@hono/zod-openapi";
import { eq, sql } from "drizzle-orm";
import type { SQLiteUpdateSetSource } from "drizzle-orm/sqlite-core";
import { dbOf } from "../db/client";
import { teams } from "../db/schema";
import { authenticate, requireScope } from "../lib/auth";
import { encryptSecret } from "../lib/crypto";
import { signingSecretCache } from "../lib/auth-cache";
import { ApiError } from "../lib/errors";
import { newRouter, problemResponses, security } from "../lib/openapi";
import { MIN_SECRET_BYTES, SECRET_PATTERN, secretKeyBytes } from "../lib/standard-webhooks";

export const teamRoutes = newRouter();

/** Team fields that hold secrets: write-only, stored encrypted, read back only as `{set}`. */
export const SECRET_FIELDS = { signing_secret: "signingSecret", github_webhook_secret: "githubWebhookSecret", github_token: "githubToken" } as const;

const secretState = z.object({ set: z.boolean() });
export const teamSchema = z.object({
  id: z.string(),
  name: z.string(),
  signing_secret: secretState,
  github_webhook_secret: secretState,
  github_token: secretState,
  daily_budget_usd: z.number().nullable(),
  max_running: z.record(z.string(), z.number().int()),
  created_at: z.string(),
  updated_at: z.string(),
});
export type Team = z.infer<typeof teamSchema>;

const patchSchema = z
  .object({
    name: z.string().min(1).max(200),
    // The pattern, and then the key itself: a secret that matches it but does not decode
    // (33 base64 characters, say) would make every later callback fail.
    signing_secret: z
      .string()
      .max(500)
      .regex(SECRET_PATTERN, `a Standard Webhooks secret: whsec_ followed by at least ${MIN_SECRET_BYTES} bytes of base64`)
      .refine((s) => !SECRET_PATTERN.test(s) || secretKeyBytes(s) !== null, `not valid base64, or under ${MIN_SECRET_BYTES} bytes once decoded: whsec_ followed by the base64 of ${MIN_SECRET_BYTES} to 64 random bytes`)
      .nullable(),
    github_webhook_secret: z.string().min(16).max(500).nullable(),
    github_token: z.string().min(10).max(500).nullable(),
    daily_budget_usd: z.number().nonnegative().nullable(),
    max_running: z
      .record(z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, "a lowercase role name"), z.number().int().nonnegative().nullable())
      .nullable()
      .describe("merged into the current limits (JSON Merge Patch): a role set to a number gets that limit, a role set to null loses its limit, roles not named keep theirs; null removes every limit"),
  })
  .partial()
  .strict();

function present(row: typeof teams.$inferSelect): Team {
  return {
    id: row.id,
    name: row.name,
    signing_secret: { set: row.signingSecret !== null },
    github_webhook_secret: { set: row.githubWebhookSecret !== null },
    github_token: { set: row.githubToken !== null },
    daily_budget_usd: row.dailyBudgetUsd,
    max_running: row.maxRunning ?? {},
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

teamRoutes.use("/v1/team", authenticate, requireScope("operator"));

teamRoutes.openapi(
  createRoute({ method: "get", path: "/v1/team", summary: "The team's settings (secrets show only whether they are set)", security, responses: { 200: { description: "Settings", content: { "application/json": { schema: teamSchema } } }, ...problemResponses } }),
  async (c) => {
    const row = await dbOf(c.env).select().from(teams).where(eq(teams.id, c.get("auth").team_id)).get();
    if (!row) throw new ApiError("not_found", "The team no longer exists.");
    return c.json(present(row), 200);
  },
);

teamRoutes.openapi(
  createRoute({
    method: "patch",
    path: "/v1/team",
    summary: "Change settings; a secret set to null is removed",
    description:
      "Fields not in the body are kept. `max_running` is merged into the team's current limits as a JSON Merge Patch (RFC 7396): `{\"max_running\":{\"executor\":3}}` sets the executor limit and keeps the other roles'; a role set to null (`{\"planner\":null}`) loses its limit; `\"max_running\":null` removes every limit.",
    security,
    request: { body: { required: true, content: { "application/json": { schema: patchSchema } } } },
    responses: { 200: { description: "Settings", content: { "application/json": { schema: teamSchema } } }, ...problemResponses },
  }),
  async (c) => {
    const patch = c.req.valid("json");
    const teamId = c.get("auth").team_id;
    const update: SQLiteUpdateSetSource<typeof teams> = { updatedAt: new Date().toISOString() };
    if (patch.name !== undefined) update.name = patch.name;
    if (patch.daily_budget_usd !== undefined) update.dailyBudgetUsd = patch.daily_budget_usd;
    // Merged in the UPDATE itself (SQLite's json_patch is RFC 7396), not read, merged and
    // written back: two operators setting different roles at once both keep their change.
    if (patch.max_running === null) update.maxRunning = null;
    else if (patch.max_running !== undefined) update.maxRunning = sql`json_patch(coalesce(${teams.maxRunning}, '{}'), ${JSON.stringify(patch.max_running)})`;
    for (const [field, column] of Object.entries(SECRET_FIELDS) as [keyof typeof SECRET_FIELDS, (typeof SECRET_FIELDS)[keyof typeof SECRET_FIELDS]][]) {
      const value = patch[field];
      if (value === undefined) continue;
      update[column] = value === null ? null : await encryptSecret(c.env.SECRETS_KEY, value, `${teamId}:${field}`);
    }
    const row = await dbOf(c.env).update(teams).set(update).where(eq(teams.id, teamId)).returning().get();
    signingSecretCache.forget(teamId);
    if (!row) throw new ApiError("not_found", "The team no longer exists.");
    return c.json(present(row), 200);
  },
);
