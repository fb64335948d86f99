import { z } from "@hono/zod-openapi";
import type { TaskRow } from "../db/tasks";
import { ATTEMPT_REPORT_MAX, PRIORITIES, priorityName, ROLE_PATTERN, TASK_SOURCES, TASK_STATUSES, type TaskSource, type TaskStatus } from "../domain/tasks";
import type { QuestionRow } from "../db/questions";
import type { WorkerRow } from "../db/workers";
import { roundUsd } from "../domain/money";
import { WORKER_STATUSES, type WorkerStatus } from "../domain/workers";
import { clientId } from "./ids";

/**
 * Request and response shapes of the task, worker and question routes, and the functions that
 * turn D1 rows into them: in lib, not routes, because the team stream (lib/task-events.ts,
 * TeamHub's snapshot) sends the same shapes.
 */

export const taskId = clientId.describe("a task id, as POST /v1/tasks gave it");
export const taskIdParam = z.object({ id: taskId });
export const roleSchema = z.string().regex(ROLE_PATTERN, "a lowercase name: a letter, then up to 63 letters, digits, '_' or '-'");
export const workerIdSchema = clientId.describe("the worker's own name, e.g. exec-alpha");

/** A task as the API shows it. The lease id is never shown: it is the holder's capability. */
export const taskSchema = z
  .object({
    id: z.string(),
    title: z.string(),
    description: z.string().describe("Markdown"),
    role: z.string(),
    priority: z.enum(PRIORITIES),
    depends_on: z.array(z.string()),
    status: z.enum(TASK_STATUSES),
    blocked_by: z.string().nullable().describe("the failed or cancelled task that keeps this one from running"),
    attempts: z.number().int().describe("claims so far, the current one included"),
    max_attempts: z.number().int(),
    available_at: z.string().describe("not claimable before this (a retry's backoff)"),
    idempotency_key: z.string().nullable(),
    source: z.enum(TASK_SOURCES),
    worker_id: z.string().nullable().describe("the worker that claimed it last; null after a retry (POST /v1/tasks/{id}/retry) until it is claimed again"),
    lease_expires_at: z.string().nullable(),
    result: z.string().nullable(),
    cost_usd: z.number().describe("summed over attempts"),
    tokens: z.number().int(),
    duration_ms: z.number().int(),
    created_at: z.string(),
    updated_at: z.string(),
    claimed_at: z.string().nullable(),
    completed_at: z.string().nullable().describe("when it ended: completed, failed or cancelled"),
    version: z.number().int().describe("one more with every write to the row: of two copies of one task, the one with the higher version is the later (per row the team stream never sends an older one after a newer; some writes, such as heartbeats, raise it without an event)"),
  })
  .openapi("Task");
export type TaskResponse = z.infer<typeof taskSchema>;

export const leaseSchema = z.object({ id: z.string(), expires_at: z.string() });
export const leasedTaskSchema = taskSchema.extend({ lease: leaseSchema }).openapi("LeasedTask");
export type LeasedTaskResponse = z.infer<typeof leasedTaskSchema>;

export function toTask(row: TaskRow): TaskResponse {
  return {
    id: row.id,
    title: row.title,
    description: row.description,
    role: row.role,
    priority: priorityName(row.priority),
    depends_on: row.dependsOn,
    status: row.status as TaskStatus,
    blocked_by: row.blockedBy,
    attempts: row.attempts,
    max_attempts: row.maxAttempts,
    available_at: row.availableAt,
    idempotency_key: row.idempotencyKey,
    source: row.source as TaskSource,
    worker_id: row.workerId,
    lease_expires_at: row.leaseExpiresAt,
    result: row.result,
    // Totals added before they were rounded in SQL (addUsage) may hold a float sum's last bits.
    cost_usd: roundUsd(row.costUsd),
    tokens: row.tokens,
    duration_ms: row.durationMs,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
    claimed_at: row.claimedAt,
    completed_at: row.completedAt,
    version: row.version,
  };
}

/** The task with the lease its holder uses for heartbeat, complete and fail. */
export function toLeasedTask(row: TaskRow): LeasedTaskResponse {
  return { ...toTask(row), lease: { id: row.leaseId ?? "", expires_at: row.leaseExpiresAt ?? "" } };
}

/** What a worker reports when an attempt ends (as `claude -p --output-format json` does). */
export const attemptReportSchema = z.object({
  lease_id: z.string().min(1).max(200),
  result: z.string().max(200_000).optional().describe("Markdown: what the agent produced, or why it failed"),
  cost_usd: z.number().nonnegative().max(ATTEMPT_REPORT_MAX.cost_usd).optional(),
  tokens: z.number().int().nonnegative().max(ATTEMPT_REPORT_MAX.tokens).optional(),
  duration_ms: z.number().int().nonnegative().max(ATTEMPT_REPORT_MAX.duration_ms).optional(),
});

// Questions

/** `withdrawn`: the attempt that asked ended before an answer (the task completed, failed, was released or cancelled, or its lease expired). */
export const QUESTION_STATUSES = ["open", "answered", "withdrawn"] as const;

export const questionSchema = z
  .object({
    id: z.string(),
    task_id: z.string(),
    worker_id: z.string(),
    text: z.string().describe("Markdown"),
    status: z.enum(QUESTION_STATUSES),
    answer: z.string().nullable().describe("Markdown"),
    answered_by: z.string().nullable().describe("the id of the key that answered"),
    created_at: z.string(),
    answered_at: z.string().nullable(),
    version: z.number().int().describe("one more with every write to the row: of two copies of one question, the one with the higher version is the later (per row the team stream never sends an older one after a newer; some writes, such as heartbeats, raise it without an event)"),
  })
  .openapi("Question");
export type QuestionResponse = z.infer<typeof questionSchema>;

export function toQuestion(row: QuestionRow): QuestionResponse {
  return {
    id: row.id,
    task_id: row.taskId,
    worker_id: row.workerId,
    text: row.text,
    status: row.status as QuestionResponse["status"],
    answer: row.answer,
    answered_by: row.answeredBy,
    created_at: row.createdAt,
    answered_at: row.answeredAt,
    version: row.version,
  };
}


// Workers

export const workerSchema = z
  .object({
    id: z.string(),
    role: z.string(),
    status: z.enum(WORKER_STATUSES).describe("`lost`: its lease expired, or it has not been seen for 5 minutes"),
    current_task: z.string().nullable(),
    tasks_completed: z.number().int(),
    last_seen_at: z.string(),
    cost_usd: z.number().describe("what its own attempts reported spending (complete, fail, release, and cost reported after an attempt ended), whoever holds those tasks now"),
    created_at: z.string(),
    version: z.number().int().describe("one more with every write to the row (a heartbeat too): of two copies of one worker, the one with the higher version is the later (per row the team stream never sends an older one after a newer; some writes, such as heartbeats, raise it without an event)"),
  })
  .openapi("Worker");
export type WorkerResponse = z.infer<typeof workerSchema>;

export function toWorker({ worker, costUsd }: { worker: WorkerRow; costUsd: number }): WorkerResponse {
  return {
    id: worker.id,
    role: worker.role,
    status: worker.status as WorkerStatus,
    current_task: worker.currentTask,
    tasks_completed: worker.tasksCompleted,
    last_seen_at: worker.lastSeenAt,
    cost_usd: costUsd, // rounded in the query (costSoFar)
    created_at: worker.createdAt,
    version: worker.version,
  };
}
