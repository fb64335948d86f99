import { createRoute, z } from "@hono/zod-openapi";
import { dbOf } from "../db/client";
import { teams } from "../db/schema";
import { requireAdmin } from "../lib/auth";
import { newId } from "../lib/crypto";
import { newRouter, problemResponses } from "../lib/openapi";
import { createKey, createdKeySchema } from "./keys";
import { eq } from "drizzle-orm";
import { SCOPE_NAMES } from "../domain/scopes";
import { ApiError } from "../lib/errors";
import { type SessionHubStub, sessionHub, type TopicHubStub, topicHub } from "../lib/hubs";
import { clientId } from "../lib/ids";

export const adminRoutes = newRouter();

export const createdTeamSchema = z.object({ team_id: z.string(), name: z.string(), api_key: z.string().describe("an operator key, shown once") });
export type CreatedTeam = z.infer<typeof createdTeamSchema>;

adminRoutes.use("/v1/admin/*", requireAdmin);
adminRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/admin/teams",
    summary: "Create a team and its first operator key (needs ADMIN_TOKEN)",
    security: [{ bearer: [] }],
    request: { body: { required: true, content: { "application/json": { schema: z.object({ name: z.string().min(1).max(200) }) } } } },
    responses: { 201: { description: "Created", content: { "application/json": { schema: createdTeamSchema } } }, ...problemResponses },
  }),
  async (c) => {
    const { name } = c.req.valid("json");
    const db = dbOf(c.env);
    const now = new Date().toISOString();
    const teamId = newId("team");
    await db.insert(teams).values({ id: teamId, name, createdAt: now, updatedAt: now });
    const key = await createKey(db, teamId, "initial operator key", ["operator"]);
    return c.json({ team_id: teamId, name, api_key: key.key }, 201);
  },
);

adminRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/admin/teams/{team_id}/keys",
    summary: "Mint a key for a team (needs ADMIN_TOKEN): recovery when a team lost its operator keys",
    security: [{ bearer: [] }],
    request: {
      params: z.object({ team_id: z.string().max(100) }),
      body: { required: true, content: { "application/json": { schema: z.object({ name: z.string().min(1).max(200), scopes: z.array(z.enum(SCOPE_NAMES)).min(1) }) } } },
    },
    responses: { 201: { description: "Created", content: { "application/json": { schema: createdKeySchema } } }, ...problemResponses },
  }),
  async (c) => {
    const { team_id } = c.req.valid("param");
    const { name, scopes } = c.req.valid("json");
    const db = dbOf(c.env);
    const team = await db.select({ id: teams.id }).from(teams).where(eq(teams.id, team_id)).get();
    if (!team) throw new ApiError("not_found", `No team ${team_id}.`);
    return c.json(await createKey(db, team_id, name, [...new Set(scopes)]), 201);
  },
);

/** The session's hub, and the topic's when one is named: 404 unless each was created. */
async function existingHubs(env: Env, teamId: string, sessionId: string, topicId?: string): Promise<[string, SessionHubStub | TopicHubStub][]> {
  const hubs: [string, SessionHubStub | TopicHubStub][] = [[`session ${sessionId}`, sessionHub(env, teamId, sessionId)]];
  if (topicId) hubs.push([`topic ${topicId}`, topicHub(env, teamId, sessionId, topicId)]);
  for (const [what, hub] of hubs) if (!(await hub.summary())) throw new ApiError("not_found", `No ${what} in team ${teamId}.`);
  return hubs;
}

export const restartedSchema = z.object({ restarted: z.array(z.string()).describe("the hubs restarted: the session's, then the topic's when one was named") });

adminRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/admin/teams/{team_id}/hubs/restart",
    summary: "Restart a session's Durable Object (and a topic's) as a deploy does (needs ADMIN_TOKEN)",
    description:
      "Open streams drop and resume by Last-Event-ID; state is reloaded from the object's storage; a queue message being applied at that moment is retried. For operators (clearing a stuck object) and the restart benchmark, which uses it to reproduce a redeploy under wrangler dev, whose reload would also drop the local queue simulator's messages.",
    security: [{ bearer: [] }],
    request: {
      params: z.object({ team_id: z.string().max(100) }),
      body: { required: true, content: { "application/json": { schema: z.object({ session_id: clientId, topic_id: clientId.optional() }) } } },
    },
    responses: { 200: { description: "Restarted", content: { "application/json": { schema: restartedSchema } } }, ...problemResponses },
  }),
  async (c) => {
    const { team_id } = c.req.valid("param");
    const { session_id, topic_id } = c.req.valid("json");
    const hubs = await existingHubs(c.env, team_id, session_id, topic_id);
    for (const [, hub] of hubs) await hub.restart().catch(() => {}); // the abort rejects the call that asked for it
    return c.json({ restarted: hubs.map(([what]) => what) }, 200);
  },
);

const hubStatusSchema = z.object({
  hub: z.string().describe("`session <id>` or `topic <id>`"),
  streams: z.number().int().describe("SSE streams open on it now"),
  events: z.number().int().describe("events kept for replay by Last-Event-ID"),
  applied_ids: z.number().int().describe("event ids remembered so that a redelivery is applied once"),
  last_seq: z.number().int(),
});

adminRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/admin/teams/{team_id}/hubs",
    summary: "A session's Durable Object (and a topic's): open streams and what it stores (needs ADMIN_TOKEN)",
    description: "For operators: whether streams whose clients went away were let go, and how much each hub keeps.",
    security: [{ bearer: [] }],
    request: { params: z.object({ team_id: z.string().max(100) }), query: z.object({ session_id: clientId, topic_id: clientId.optional() }) },
    responses: { 200: { description: "The hubs", content: { "application/json": { schema: z.object({ hubs: z.array(hubStatusSchema) }) } } }, ...problemResponses },
  }),
  async (c) => {
    const { team_id } = c.req.valid("param");
    const { session_id, topic_id } = c.req.valid("query");
    const hubs = await existingHubs(c.env, team_id, session_id, topic_id);
    const out: z.infer<typeof hubStatusSchema>[] = [];
    for (const [what, hub] of hubs) {
      const [streams, counts] = await Promise.all([hub.subscriberCount(), hub.storageCounts()]);
      out.push({ hub: what, streams, events: counts.events, applied_ids: counts.applied, last_seq: counts.last_seq });
    }
    return c.json({ hubs: out }, 200);
  },
);
