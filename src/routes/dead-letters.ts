import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, lt, or } from "drizzle-orm";
import { dbOf } from "../db/client";
import { deadLetters } from "../db/schema";
import { authenticate, requireScope } from "../lib/auth";
import { newRouter, problemResponses, security } from "../lib/openapi";
import { decodeCursor, listQuery, listSchema, page } from "../lib/pagination";

export const deadLetterRoutes = newRouter();

export const deadLetterSchema = z.object({ id: z.string(), queue: z.string(), message_id: z.string(), attempts: z.number(), received_at: z.string(), body: z.unknown() });

deadLetterRoutes.use("/v1/dead-letters", authenticate, requireScope("operator"));
deadLetterRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/dead-letters",
    summary: "Queue messages (callbacks, team events, notification deliveries) that failed every retry, newest first",
    description: "`attempts` is the tries the message had on its queue before it was dead-lettered (max_retries + 1).",
    security,
    request: { query: listQuery },
    responses: { 200: { description: "Dead letters", content: { "application/json": { schema: listSchema(deadLetterSchema) } } }, ...problemResponses },
  }),
  async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const after = decodeCursor(cursor, 2) as [string, string] | null;
    const rows = await dbOf(c.env)
      .select()
      .from(deadLetters)
      .where(and(eq(deadLetters.teamId, c.get("auth").team_id), after ? or(lt(deadLetters.receivedAt, after[0]), and(eq(deadLetters.receivedAt, after[0]), lt(deadLetters.id, after[1]))) : undefined))
      .orderBy(desc(deadLetters.receivedAt), desc(deadLetters.id))
      .limit(limit + 1)
      .all();
    const items = rows.map((r) => ({ id: r.id, queue: r.queue, message_id: r.messageId, attempts: r.attempts, received_at: r.receivedAt, body: r.body }));
    return c.json(page(items, limit, (d) => [d.received_at, d.id]), 200);
  },
);
