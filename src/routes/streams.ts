import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { TEAM_EVENT_TYPES } from "../domain/team-events";
import type { AppEnv } from "../lib/app-env";
import { KEY_CHECK_SHARE_MS, authenticate, keyExists, requireScope } from "../lib/auth";
import { ApiError } from "../lib/errors";
import { sessionHub, topicHub } from "../lib/hubs";
import { teamHub } from "../lib/team-stream";
import { clientId } from "../lib/ids";
import { KEY_RECHECK_MS, endWhenKeyDeleted } from "../lib/revocable-stream";
import { parseLastEventId } from "../lib/sse";
import { newRouter, problemResponses, security } from "../lib/openapi";

export const streamRoutes = newRouter();

const SESSION_STREAM_PATHS = ["/v1/sessions/{sid}/stream", "/alpha/discovery/{sid}/stream", "/api/alpha/sessions/{sid}/stream"] as const;
const TOPIC_STREAM_PATHS = ["/v1/sessions/{sid}/topics/{tid}/stream", "/alpha/discovery/{sid}/{tid}/stream"] as const;

const ID = "[A-Za-z0-9][A-Za-z0-9._-]{0,127}";
const TEAM_STREAM_PATH = "/v1/stream";
const STREAM_PATTERNS = [...SESSION_STREAM_PATHS, ...TOPIC_STREAM_PATHS, TEAM_STREAM_PATH].map((p) => new RegExp(`^${p.replace(/\{sid\}|\{tid\}/g, ID)}$`));

/** Whether a path is one of the stream routes (stream tokens are issued only for those). */
export function isStreamPath(path: string): boolean {
  return STREAM_PATTERNS.some((r) => r.test(path));
}

/** Hands the request to the hub, which writes retry, snapshot or replay, then live events. */
async function openStream(c: Context<AppEnv>, stub: { fetch(request: Request): Promise<Response> }, what: string, teamId?: string): Promise<Response> {
  const url = new URL(c.req.url);
  const headers = new Headers();
  if (teamId) headers.set("X-Team-Id", teamId);
  // Read here, not copied through: a raw value may hold bytes no header can carry (NUL, CR, LF).
  const lastId = parseLastEventId(c.req.header("Last-Event-ID") ?? url.searchParams.get("last_event_id"));
  if (lastId !== null) headers.set("Last-Event-ID", String(lastId));
  const response = await stub.fetch(new Request("https://hub/stream", { headers, signal: c.req.raw.signal }));
  if (response.status === 404) {
    await response.body?.cancel();
    throw new ApiError("not_found", `No ${what}.`);
  }
  if (!response.body) return response;
  const auth = c.get("auth");
  const everyMs = Number((c.env as { STREAM_KEY_CHECK_MS?: string }).STREAM_KEY_CHECK_MS) || KEY_RECHECK_MS;
  // A check's answer is shared for at most half the interval (10 s deployed): a deleted key's
  // stream ends within everyMs + that.
  const shareMs = Math.min(KEY_CHECK_SHARE_MS, everyMs / 2);
  return new Response(endWhenKeyDeleted(response.body, () => keyExists(c.env, auth, shareMs), everyMs), response);
}

const sseResponse = {
  200: { description: "text/event-stream: retry, a snapshot (or the replay after Last-Event-ID), then one event per change and heartbeat comments", content: { "text/event-stream": { schema: z.string() } } },
  ...problemResponses,
};
const streamHeaders = z.object({ "last-event-id": z.string().optional() });
const streamQuery = z.object({ last_event_id: z.string().optional(), access_token: z.string().optional() });

for (const path of SESSION_STREAM_PATHS) {
  const honoPath = path.replace("{sid}", ":sid");
  streamRoutes.use(honoPath, authenticate, requireScope("read"));
  streamRoutes.openapi(
    createRoute({ method: "get", path, summary: "A session's live events (session-level)", security, request: { params: z.object({ sid: clientId }), headers: streamHeaders, query: streamQuery }, responses: sseResponse }),
    (async (c: Context<AppEnv>) => {
      const sid = c.req.param("sid") as string;
      return openStream(c, sessionHub(c.env, c.get("auth").team_id, sid), `session ${sid}`);
    }) as never,
  );
}

for (const path of TOPIC_STREAM_PATHS) {
  const honoPath = path.replace("{sid}", ":sid").replace("{tid}", ":tid");
  streamRoutes.use(honoPath, authenticate, requireScope("read"));
  streamRoutes.openapi(
    createRoute({ method: "get", path, summary: "A topic's live events (steps, usage, alphas, workspace)", security, request: { params: z.object({ sid: clientId, tid: clientId }), headers: streamHeaders, query: streamQuery }, responses: sseResponse }),
    (async (c: Context<AppEnv>) => {
      const sid = c.req.param("sid") as string;
      const tid = c.req.param("tid") as string;
      return openStream(c, topicHub(c.env, c.get("auth").team_id, sid, tid), `topic ${tid} in session ${sid}`);
    }) as never,
  );
}

streamRoutes.use(TEAM_STREAM_PATH, authenticate, requireScope("read"));
streamRoutes.openapi(
  createRoute({
    method: "get",
    path: TEAM_STREAM_PATH,
    summary: "The team's live events: tasks, workers, questions and the budget",
    description: `Starts with a \`snapshot\` (task counts by status, up to 200 workers, up to 50 open questions, read from D1), or the replay after Last-Event-ID; then ${TEAM_EVENT_TYPES.join(", ")}, with heartbeat comments.`,
    security,
    request: { headers: streamHeaders, query: streamQuery },
    responses: sseResponse,
  }),
  (async (c: Context<AppEnv>) => {
    const teamId = c.get("auth").team_id;
    return openStream(c, teamHub(c.env, teamId), "team stream", teamId);
  }) as never,
);
