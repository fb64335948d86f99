import { createRoute, z } from "@hono/zod-openapi";
import { dbOf } from "../db/client";
import { COST_GROUPS, sumCosts } from "../db/costs";
import { authenticate, requireScope } from "../lib/auth";
import { ApiError } from "../lib/errors";
import { newRouter, problemResponses, security } from "../lib/openapi";
import { decodeCursor, listQuery, listSchema, page } from "../lib/pagination";

/** What the team's tasks cost, summed by day, role, worker or task. */
export const costRoutes = newRouter();

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const utcDate = z
  .string()
  .regex(DATE, "a UTC date, YYYY-MM-DD")
  // Date.parse rejects some impossible days (NaN) and rolls others over (02-30 → 03-02): both are refused.
  .refine((d) => {
    if (!DATE.test(d)) return true; // the regex has said so: one error per field
    const t = Date.parse(`${d}T00:00:00Z`);
    return !Number.isNaN(t) && new Date(t).toISOString().startsWith(d);
  }, "not a calendar date");

export const costQuery = listQuery.extend({
  by: z.enum(COST_GROUPS),
  from: utcDate.optional().describe("first UTC day included"),
  to: utcDate.optional().describe("last UTC day included"),
});

export const costGroupSchema = z
  .object({
    key: z.string().describe("the day (YYYY-MM-DD), role, worker id or task id"),
    cost_usd: z.number(),
    tokens: z.number().int(),
    duration_ms: z.number().int(),
    tasks: z.number().int().describe("tasks that used any"),
  })
  .openapi("CostGroup");
export type CostGroupResponse = z.infer<typeof costGroupSchema>;

costRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/costs",
    summary: "Cost, tokens and duration of the team's tasks, summed by day, role, worker or task, in key order",
    description: "What each attempt reported as it ended (complete, fail or release), dated by the UTC day it was reported and counted to the worker that ran it: a retried or cancelled task keeps what its earlier attempts spent, where and when they spent it. `tasks` is how many tasks the group's attempts belong to.",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { query: costQuery },
    responses: { 200: { description: "Groups", content: { "application/json": { schema: listSchema(costGroupSchema) } } }, ...problemResponses },
  }),
  async (c) => {
    const { by, from, to, limit, cursor } = c.req.valid("query");
    if (from && to && from > to) throw new ApiError("validation", "`from` is after `to`.", [{ path: "from", message: `after to (${to})` }]);
    const after = decodeCursor(cursor, 1) as [string] | null;
    const rows = await sumCosts(dbOf(c.env), { teamId: c.get("auth").team_id, by, from, to, afterKey: after ? after[0] : null, limit: limit + 1 });
    const groups = rows.map((r) => ({ key: r.key, cost_usd: r.costUsd, tokens: r.tokens, duration_ms: r.durationMs, tasks: r.tasks }));
    return c.json(page(groups, limit, (g) => [g.key]), 200);
  },
);
