import { createRoute, z } from "@hono/zod-openapi";
import { REJECTED_PREFIX, SENTINEL_PREFIX } from "../domain/sentinel";
import { authenticate, requireScope } from "../lib/auth";
import { newRouter, problemResponses, security } from "../lib/openapi";

export const sentinelRoutes = newRouter();

/** Counting stops here: past it the answer says `at_least`. */
const COUNT_LIMIT = 10_000;

/** How many objects under `prefix`, and how many of them a sweep already tried and failed (`sweep-attempts` in their metadata, src/cron/sentinels.ts). */
async function count(bucket: R2Bucket, prefix: string): Promise<{ count: number; retrying: number; at_least: boolean }> {
  let n = 0;
  let retrying = 0;
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, cursor, limit: 1000, include: ["customMetadata"] });
    n += page.objects.length;
    for (const o of page.objects) if (Number(o.customMetadata?.["sweep-attempts"] ?? 0) > 0) retrying += 1;
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor && n < COUNT_LIMIT);
  return { count: n, retrying, at_least: cursor !== undefined };
}

export const sentinelStatusSchema = z.object({
  pending: z.number(),
  retrying: z.number().describe("of the pending, those a sweep tried and failed to apply (D1 or a hub down): tried again 1, 4, 16 and 64 minutes later, then rejected"),
  rejected: z.number(),
  truncated: z.boolean(),
});

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
    return c.json({ pending: pending.count, retrying: pending.retrying, rejected: rejected.count, truncated: pending.at_least || rejected.at_least }, 200);
  },
);
