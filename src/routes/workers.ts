import { createRoute, z } from "@hono/zod-openapi";
import { dbOf } from "../db/client";
import { findWorker, listWorkers, selectWorker, upsertWorker } from "../db/workers";
import { findTask } from "../db/tasks";
import { REPORTED_STATUSES } from "../domain/workers";
import { authenticate, requireScope } from "../lib/auth";
import { ApiError } from "../lib/errors";
import { json, newRouter, problemResponses, security } from "../lib/openapi";
import { workerEvent } from "../lib/task-events";
import { publishTeamEvents } from "../lib/team-stream";
import { decodeCursor, listQuery, listSchema, page } from "../lib/pagination";
import { roleSchema, taskId, toWorker, workerIdSchema, workerSchema } from "../lib/task-schemas";

/** The team's workers: each reports itself with heartbeats; people list them. */
export const workerRoutes = newRouter();

const workerIdParam = z.object({ wid: workerIdSchema });


export const workerHeartbeatSchema = z.object({ role: roleSchema, status: z.enum(REPORTED_STATUSES), current_task: taskId.nullable().optional() });


workerRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/workers/{wid}/heartbeat",
    summary: "A worker reports its role, what it is doing and its current task; recorded as seen now",
    security,
    middleware: [authenticate, requireScope("agent")] as const,
    request: { params: workerIdParam, body: { required: true, ...json(workerHeartbeatSchema) } },
    responses: { 200: { description: "The worker as recorded", ...json(workerSchema) }, ...problemResponses },
  }),
  async (c) => {
    const { wid } = c.req.valid("param");
    const body = c.req.valid("json");
    const teamId = c.get("auth").team_id;
    const db = dbOf(c.env);
    const now = new Date().toISOString();
    // A task of another team, or none, is not the worker's to report: 404, nothing recorded.
    if (body.current_task && !(await findTask(db, teamId, body.current_task))) throw new ApiError("not_found", `No task ${body.current_task}.`);
    const [[before], , [row]] = await db.batch([selectWorker(db, teamId, wid), upsertWorker(db, { teamId, id: wid, role: body.role, status: body.status, currentTask: body.current_task ?? null, now }), selectWorker(db, teamId, wid)]);
    if (!row) throw new Error("a worker upsert left no row");
    // Only a change is news: a worker heartbeats every few seconds.
    const changed = !before || before.worker.status !== row.worker.status || before.worker.currentTask !== row.worker.currentTask || before.worker.role !== row.worker.role;
    if (changed) await publishTeamEvents(c.env, teamId, [workerEvent(row.worker, now)]);
    return c.json(toWorker(row), 200);
  },
);

workerRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/workers",
    summary: "The team's workers by id: role, status, current task, tasks completed, last seen, cost so far",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { query: listQuery },
    responses: { 200: { description: "Workers", ...json(listSchema(workerSchema)) }, ...problemResponses },
  }),
  async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const after = decodeCursor(cursor, 1) as [string] | null;
    const rows = await listWorkers(dbOf(c.env), c.get("auth").team_id, limit + 1, after ? after[0] : null);
    return c.json(page(rows.map(toWorker), limit, (w) => [w.id]), 200);
  },
);

workerRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/workers/{wid}",
    summary: "A worker",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { params: workerIdParam },
    responses: { 200: { description: "Worker", ...json(workerSchema) }, ...problemResponses },
  }),
  async (c) => {
    const { wid } = c.req.valid("param");
    const row = await findWorker(dbOf(c.env), c.get("auth").team_id, wid);
    if (!row) throw new ApiError("not_found", `No worker ${wid}.`);
    return c.json(toWorker(row), 200);
  },
);
