import { createRoute, z } from "@hono/zod-openapi";
import { and, desc, eq, lt, or } from "drizzle-orm";
import { dbOf } from "../db/client";
import { tasks } from "../db/schema";
import { cancelTask, countTasksByStatus, findByIdempotencyKey, findTask, findTasks, insertTask, retryTask } from "../db/tasks";
import { blockingTask, checkCancel, checkRetry, DEFAULT_MAX_ATTEMPTS, PRIORITIES, priorityRank, TASK_STATUSES, type TaskStatus } from "../domain/tasks";
import { authenticate, requireScope } from "../lib/auth";
import { newId } from "../lib/crypto";
import { ApiError } from "../lib/errors";
import { json, newRouter, problemResponses, security } from "../lib/openapi";
import { decodeCursor, listQuery, listSchema, page } from "../lib/pagination";
import { blockedEvents, taskEvent, unblockedEvents, withdrawnEvents } from "../lib/task-events";
import { publishTeamEvents } from "../lib/team-stream";
import { roleSchema, taskId, taskIdParam, taskSchema, toTask } from "../lib/task-schemas";

export const taskRoutes = newRouter();

const MAX_DEPENDENCIES = 50;

const RESERVED_KEY_PREFIXES = ["github:", "autoloop:"];

export const createTaskSchema = z.object({
  title: z.string().trim().min(1).max(500),
  description: z.string().max(100_000).default("").describe("Markdown"),
  role: roleSchema,
  priority: z.enum(PRIORITIES).default("normal"),
  depends_on: z.array(taskId).max(MAX_DEPENDENCIES).default([]).describe("ids of the team's tasks that must complete first"),
  max_attempts: z.number().int().min(1).max(100).default(DEFAULT_MAX_ATTEMPTS),
  idempotency_key: z
    .string()
    .min(1)
    .max(200)
    // Keys Switchboard makes itself (`github:owner/repo#7`) are its own: a client key taking one
    // first would turn that deliveries into "already created" and no task, for good.
    .refine((key) => !RESERVED_KEY_PREFIXES.some((p) => key.startsWith(p)), { message: `keys starting with ${RESERVED_KEY_PREFIXES.join(" or ")} are reserved for the tasks Switchboard creates itself` })
    .optional()
    .describe("a second create with the same key returns the first task (200); keys starting with github: or autoloop: are reserved"),
  // `github` and `autoloop` tasks are made by Switchboard itself (webhooks, the autoloop).
  source: z.enum(["manual", "planner"]).default("manual"),
});
export type CreateTask = z.input<typeof createTaskSchema>;

taskRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/tasks",
    summary: "Queue a task for a role (agents may create tasks, as a planner does)",
    security,
    middleware: [authenticate, requireScope("agent")] as const,
    request: { body: { required: true, ...json(createTaskSchema) } },
    responses: {
      201: { description: "Created", ...json(taskSchema) },
      200: { description: "The task created earlier with this idempotency key", ...json(taskSchema) },
      ...problemResponses,
      404: { description: "A dependency is not one of the team's tasks" },
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const team = c.get("auth").team_id;
    const db = dbOf(c.env);
    if (body.idempotency_key) {
      const earlier = await findByIdempotencyKey(db, team, body.idempotency_key);
      if (earlier) return c.json(toTask(earlier), 200);
    }
    const dependsOn = [...new Set(body.depends_on)];
    const deps = dependsOn.length > 0 ? await findTasks(db, team, dependsOn) : [];
    const found = new Set(deps.map((d) => d.id));
    const missing = body.depends_on.flatMap((id, i) => (found.has(id) ? [] : [{ id, path: `depends_on.${i}`, message: `No task ${id} in this team` }]));
    if (missing.length > 0) {
      throw new ApiError("not_found", `depends_on names tasks this team does not have: ${missing.map((m) => m.id).join(", ")}.`, missing.map(({ path, message }) => ({ path, message })));
    }

    const blockedBy = blockingTask(deps.map((d) => ({ id: d.id, status: d.status as TaskStatus, blocked_by: d.blockedBy })));
    const now = new Date().toISOString();
    const created = await insertTask(db, {
      teamId: team,
      id: newId("task"),
      title: body.title,
      description: body.description,
      role: body.role,
      priority: priorityRank(body.priority),
      dependsOn,
      status: blockedBy ? "blocked" : "pending",
      blockedBy,
      maxAttempts: body.max_attempts,
      availableAt: now,
      idempotencyKey: body.idempotency_key ?? null,
      source: body.source,
      createdAt: now,
      updatedAt: now,
    });
    if (created) {
      await publishTeamEvents(c.env, team, [taskEvent("task.created", created)]);
      return c.json(toTask(created), 201);
    }
    // Only an idempotency key can collide: a concurrent create with the same key won.
    const earlier = body.idempotency_key ? await findByIdempotencyKey(db, team, body.idempotency_key) : undefined;
    if (!earlier) throw new Error("task insert changed nothing, yet no task has its idempotency key");
    return c.json(toTask(earlier), 200);
  },
);

taskRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/tasks",
    summary: "The team's tasks, newest first, by status and role",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { query: listQuery.extend({ status: z.enum(TASK_STATUSES).optional(), role: roleSchema.optional() }) },
    responses: { 200: { description: "Tasks", ...json(listSchema(taskSchema)) }, ...problemResponses },
  }),
  async (c) => {
    const { limit, cursor, status, role } = c.req.valid("query");
    const after = decodeCursor(cursor, 2) as [string, string] | null;
    const rows = await dbOf(c.env)
      .select()
      .from(tasks)
      .where(
        and(
          eq(tasks.teamId, c.get("auth").team_id),
          status ? eq(tasks.status, status) : undefined,
          role ? eq(tasks.role, role) : undefined,
          after ? or(lt(tasks.createdAt, after[0]), and(eq(tasks.createdAt, after[0]), lt(tasks.id, after[1]))) : undefined,
        ),
      )
      .orderBy(desc(tasks.createdAt), desc(tasks.id))
      .limit(limit + 1)
      .all();
    return c.json(page(rows.map(toTask), limit, (t) => [t.created_at, t.id]), 200);
  },
);

export const taskCountsSchema = z
  .object({
    counts: z.record(z.enum(TASK_STATUSES), z.number().int()).describe("every status, 0 included"),
    total: z.number().int(),
  })
  .openapi("TaskCounts");
export type TaskCountsResponse = z.infer<typeof taskCountsSchema>;

// Registered before /v1/tasks/{id}, which would otherwise take "counts" for a task id.
taskRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/tasks/counts",
    summary: "How many of the team's tasks are in each status, optionally of one role (one query: what `switchboard status` shows)",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { query: z.object({ role: roleSchema.optional() }) },
    responses: { 200: { description: "Counts by status", ...json(taskCountsSchema) }, ...problemResponses },
  }),
  async (c) => {
    const { role } = c.req.valid("query");
    const counts = await countTasksByStatus(dbOf(c.env), c.get("auth").team_id, role);
    return c.json({ counts, total: Object.values(counts).reduce((sum, n) => sum + n, 0) }, 200);
  },
);

taskRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/tasks/{id}",
    summary: "A task: status, attempts, worker, lease deadline, result, cost",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { params: taskIdParam },
    responses: { 200: { description: "Task", ...json(taskSchema) }, ...problemResponses },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const row = await findTask(dbOf(c.env), c.get("auth").team_id, id);
    if (!row) throw new ApiError("not_found", `No task ${id}.`);
    return c.json(toTask(row), 200);
  },
);

taskRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/tasks/{id}/cancel",
    summary: "Cancel a task that has not ended; its lease is void and the tasks depending on it become blocked",
    security,
    middleware: [authenticate, requireScope("operator")] as const,
    request: { params: taskIdParam },
    responses: { 200: { description: "Cancelled", ...json(taskSchema) }, 409: { description: "The task has ended" }, ...problemResponses },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const team = c.get("auth").team_id;
    const db = dbOf(c.env);
    const row = await findTask(db, team, id);
    if (!row) throw new ApiError("not_found", `No task ${id}.`);
    const verdict = checkCancel(row.status as TaskStatus);
    if (!verdict.ok) throw new ApiError("conflict", verdict.reason);
    const at = new Date().toISOString();
    const cancelled = await cancelTask(db, team, id, at);
    // It ended between the read and the write (say, it completed): say how.
    if (!cancelled) throw new ApiError("conflict", `The task changed while it was being cancelled; it is ${(await findTask(db, team, id))?.status}.`);
    await publishTeamEvents(c.env, team, [taskEvent("task.cancelled", cancelled.task), ...blockedEvents(cancelled.blocked, at), ...withdrawnEvents(cancelled.withdrawn, at)]);
    return c.json(toTask(cancelled.task), 200);
  },
);

taskRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/tasks/{id}/retry",
    summary: "Queue a failed or cancelled task again with fresh attempts; the tasks it blocked are unblocked",
    security,
    middleware: [authenticate, requireScope("operator")] as const,
    request: { params: taskIdParam },
    responses: { 200: { description: "Queued again", ...json(taskSchema) }, 409: { description: "The task is not failed or cancelled" }, ...problemResponses },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const team = c.get("auth").team_id;
    const db = dbOf(c.env);
    const row = await findTask(db, team, id);
    if (!row) throw new ApiError("not_found", `No task ${id}.`);
    const verdict = checkRetry({ status: row.status as TaskStatus, blocked_by: row.blockedBy });
    if (!verdict.ok) throw new ApiError("conflict", verdict.reason);
    const at = new Date().toISOString();
    const retried = await retryTask(db, team, id, at);
    if (!retried) throw new ApiError("conflict", `The task changed while it was being retried; it is ${(await findTask(db, team, id))?.status}.`);
    await publishTeamEvents(c.env, team, [taskEvent("task.retried", retried.task), ...unblockedEvents(retried.unblocked, at), ...blockedEvents(retried.blocked, at)]);
    return c.json(toTask(retried.task), 200);
  },
);
