import type { BlockChange, TaskRow, UnblockChange } from "../db/tasks";
import type { WorkerRow } from "../db/workers";
import type { QuestionRow } from "../db/questions";
import type { TeamEvent, TeamEventType } from "../domain/team-events";
import { taskForEvent } from "../domain/team-events";
import { toQuestion, toTask } from "./task-schemas";
import { teamEvent } from "./team-stream";

/** The team-stream events of the task routes, built from the rows they wrote. */

export function taskEvent(type: TeamEventType, row: TaskRow, extra: Record<string, unknown> = {}, at = row.updatedAt): TeamEvent {
  return teamEvent(type, { task: taskForEvent(toTask(row)), ...extra }, at);
}

/** `version`: the task's, as the write that blocked it left it (TeamHub orders by it). */
export function blockedEvents(rows: BlockChange[], at: string): TeamEvent[] {
  return rows.map((r) => teamEvent("task.blocked", { task_id: r.id, blocked_by: r.blockedBy, version: r.version }, at));
}

export function unblockedEvents(rows: UnblockChange[], at: string): TeamEvent[] {
  return rows.map((r) => teamEvent("task.unblocked", { task_id: r.id, version: r.version }, at));
}

/** A worker's row as its events carry it (its cost is in GET /v1/workers: it changes with tasks). */
export function workerEvent(row: WorkerRow, at: string): TeamEvent {
  const worker = { id: row.id, role: row.role, status: row.status, current_task: row.currentTask, tasks_completed: row.tasksCompleted, last_seen_at: row.lastSeenAt, created_at: row.createdAt, version: row.version };
  return teamEvent("worker.updated", { worker }, at);
}

/** Questions withdrawn because the attempt that asked them ended. */
export function withdrawnEvents(rows: QuestionRow[], at: string): TeamEvent[] {
  return rows.map((q) => teamEvent("question.withdrawn", { question: toQuestion(q) }, at));
}
