import { createRoute, z } from "@hono/zod-openapi";
import { adminTokenProblem, secretsKeyProblem } from "../lib/crypto";
import { problemBody } from "../lib/errors";
import { newRouter } from "../lib/openapi";

export const healthRoutes = newRouter();

/** How long each check may take before it counts as failed: a health check must answer. */
export const HEALTH_TIMEOUT_MS = 2000;
/** The one Durable Object the check calls; no session hub has a name without a `:`. */
export const HEALTH_HUB_NAME = "healthz";
/** A key nothing writes: a head of it is one cheap R2 round trip answering null. */
export const HEALTH_R2_KEY = "healthz/probe-missing";

const healthSchema = z.object({ ok: z.boolean(), checks: z.record(z.string(), z.string()) });
const unhealthySchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.literal(503),
  detail: z.string(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })),
  request_id: z.string(),
  checks: z.record(z.string(), z.string()),
});

healthRoutes.openapi(
  createRoute({
    method: "get",
    path: "/healthz",
    summary: "Whether the Worker reaches D1, R2 and a Durable Object, has its queues bound and its secrets (SECRETS_KEY, ADMIN_TOKEN) set",
    responses: {
      200: { description: "Usable", content: { "application/json": { schema: healthSchema } } },
      503: { description: "A check failed or timed out (problem+json naming it)", content: { "application/problem+json": { schema: unhealthySchema } } },
    },
  }),
  async (c) => {
    const checks: Record<string, string> = {};
    const probe = async (name: string, fn: () => Promise<unknown>) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${HEALTH_TIMEOUT_MS} ms`)), HEALTH_TIMEOUT_MS);
      });
      try {
        await Promise.race([fn(), timeout]);
        checks[name] = "ok";
      } catch (e) {
        checks[name] = `error: ${e instanceof Error ? e.message : String(e)}`;
      } finally {
        clearTimeout(timer);
      }
    };
    await Promise.all([
      // Without a usable SECRETS_KEY every route that signs or encrypts answers 503 (and
      // without ADMIN_TOKEN the admin routes do): a deployment in that state is not usable.
      // What is wrong is named, never the value.
      probe("secrets", async () => {
        const problems = [secretsKeyProblem(c.env.SECRETS_KEY), adminTokenProblem(c.env.ADMIN_TOKEN)].filter((p) => p !== null);
        if (problems.length > 0) throw new Error(problems.join("; "));
      }),
      probe("d1", () => c.env.DB.prepare("SELECT 1 FROM teams LIMIT 1").all()),
      probe("r2", () => c.env.BUCKET.head(HEALTH_R2_KEY)),
      // A queue cannot be reached without sending a message, which a probe must not do.
      probe("queue", async () => {
        const unbound = (["CALLBACKS", "NOTIFICATIONS"] as const).filter((name) => typeof c.env[name]?.send !== "function");
        if (unbound.length > 0) throw new Error(`${unbound.join(" and ")} ${unbound.length > 1 ? "are" : "is"} not bound`);
      }),
      // One RPC to a fixed-name SessionHub: no session is ever created in it, so it answers
      // null; its object has storage once (its tables), one tiny object per deployment.
      probe("durable_objects", async () => {
        if (typeof c.env.TOPIC_HUB?.getByName !== "function" || typeof c.env.TEAM_HUB?.getByName !== "function") throw new Error("hubs are not bound");
        const hub = c.env.SESSION_HUB.getByName(HEALTH_HUB_NAME) as unknown as { summary(): Promise<unknown> };
        await hub.summary();
      }),
    ]);
    const failed = Object.entries(checks).filter(([, v]) => v !== "ok");
    if (failed.length === 0) return c.json({ ok: true, checks }, 200);
    const problem = problemBody(
      "unavailable",
      `Not usable: ${failed.map(([name, v]) => `${name} (${v.replace(/^error: /, "")})`).join(", ")}.`,
      c.get("requestId") ?? "",
      failed.map(([name, v]) => ({ path: name, message: v.replace(/^error: /, "") })),
    );
    return c.json({ ...problem, status: 503 as const, checks }, 503, { "Content-Type": "application/problem+json" });
  },
);
