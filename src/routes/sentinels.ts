import { createRoute, z } from "@hono/zod-openapi";
import { REJECTED_PREFIX, SENTINEL_PREFIX } from "../domain/sentinel";
import { authenticate, requireScope } from "../lib/auth";
import { newRouter, problemResponses, security } from "../lib/openapi";

export const sentinelRoutes = newRouter();

/** Counting stops here: past it the answer says `at_least`. */
const COUNT_LIMIT = 10_000;

async function count(bucket: R2Bucket, prefix: string): Promise<{ count: number; at_least: boolean }> {
  let n = 0;
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, cursor, limit: 1000 });
    n += page.objects.length;
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor && n < COUNT_LIMIT);
  return { count: n, at_least: cursor !== undefined };
}

export const sentinelStatusSchema = z.object({ pending: z.number(), rejected: z.number(), truncated: z.boolean() });

sentinelRoutes.use("/v1/sentinels", authenticate, requireScope("read"));
sentinelRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/sentinels",
    summary: "Callback sentinels of the team waiting for the sweep, and those rejected (kept under callback-sentinels/rejected/)",
    security,
    responses: { 200: { description: "Counts", content: { "application/json": { schema: sentinelStatusSchema } } }, ...problemResponses },
  }),
  async (c) => {
    const team = c.get("auth").team_id;
    const [pending, rejected] = await Promise.all([count(c.env.BUCKET, `${SENTINEL_PREFIX}${team}/`), count(c.env.BUCKET, `${REJECTED_PREFIX}alpha/${team}/`)]);
    return c.json({ pending: pending.count, rejected: rejected.count, truncated: pending.at_least || rejected.at_least }, 200);
  },
);
