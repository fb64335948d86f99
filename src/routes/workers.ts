import { createRoute, z } from "@hono/zod-openapi";
import { dbOf } from "../db/client";
import { findWorker, listWorkers, selectWorker, upsertWorker, type WorkerRow } from "../db/workers";
import { REPORTED_STATUSES, WORKER_STATUSES, type WorkerStatus } from "../domain/workers";
import { authenticate, requireScope } from "../lib/auth";
import { ApiError } from "../lib/errors";
import { json, newRouter, problemResponses, security } from "../lib/openapi";
import { workerEvent } from "../lib/task-events";
import { publishTeamEvents } from "../lib/team-stream";
import { decodeCursor, listQuery, listSchema, page } from "../lib/pagination";
import { roleSchema, taskId, workerIdSchema } from "./task-schemas";

/** The team's workers: each reports itself with heartbeats; people list them. */
export const workerRoutes = newRouter();

const workerIdParam = z.object({ wid: workerIdSchema });

export const workerSchema = z
  .object({
    id: z.string(),
    role: z.string(),
    status: z.enum(WORKER_STATUSES).describe("`lost`: its lease expired, or it has not been seen for 5 minutes"),
    current_task: z.string().nullable(),
    tasks_completed: z.number().int(),
    last_seen_at: z.string(),
    cost_usd: z.number().describe("the cost of the tasks it claimed last, summed over their attempts"),
    created_at: z.string(),
  })
  .openapi("Worker");
export type WorkerResponse = z.infer<typeof workerSchema>;

export const workerHeartbeatSchema = z.object({ role: roleSchema, status: z.enum(REPORTED_STATUSES), current_task: taskId.nullable().optional() });

export function toWorker({ worker, costUsd }: { worker: WorkerRow; costUsd: number }): WorkerResponse {
  return {
    id: worker.id,
    role: worker.role,
    status: worker.status as WorkerStatus,
    current_task: worker.currentTask,
    tasks_completed: worker.tasksCompleted,
    last_seen_at: worker.lastSeenAt,
    cost_usd: costUsd,
    created_at: worker.createdAt,
  };
}

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
