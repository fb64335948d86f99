import { createRoute, z } from "@hono/zod-openapi";
import { newRouter } from "../lib/openapi";

export const healthRoutes = newRouter();

const healthSchema = z.object({ ok: z.boolean(), checks: z.record(z.string(), z.string()) });

healthRoutes.openapi(
  createRoute({
    method: "get",
    path: "/healthz",
    summary: "Whether the Worker, D1, R2, the queue and the Durable Objects are usable",
    responses: { 200: { description: "Usable", content: { "application/json": { schema: healthSchema } } }, 503: { description: "A binding is not usable" } },
  }),
  async (c) => {
    const checks: Record<string, string> = {};
    const probe = async (name: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
        checks[name] = "ok";
      } catch (e) {
        checks[name] = `error: ${e instanceof Error ? e.message : String(e)}`;
      }
    };
    await Promise.all([
      probe("d1", () => c.env.DB.prepare("SELECT 1 FROM teams LIMIT 1").all()),
      probe("r2", () => c.env.BUCKET.head("healthz")),
      probe("queue", async () => {
        if (typeof c.env.CALLBACKS?.send !== "function") throw new Error("CALLBACKS is not bound");
      }),
      probe("durable_objects", async () => {
        if (typeof c.env.SESSION_HUB?.getByName !== "function" || typeof c.env.TOPIC_HUB?.getByName !== "function") throw new Error("hubs are not bound");
      }),
    ]);
    const ok = Object.values(checks).every((v) => v === "ok");
    return c.json({ ok, checks }, ok ? 200 : 503);
  },
);
