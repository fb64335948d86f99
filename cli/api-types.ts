import type { Priority, TaskSource, TaskStatus } from "../src/domain/tasks";
import type { WorkerStatus } from "../src/domain/workers";

/*
 * The shapes the people's commands read, as the Worker's zod schemas give them
 * (src/lib/task-schemas.ts, src/routes/tasks.ts, tasks.ts, team.ts). Those modules
 * pull in the Workers runtime's types, so the CLI restates the fields it uses here; the
 * CLI tests run against the real Worker, which keeps the two in step.
 */

export interface Task {
  id: string;
  title: string;
  description: string;
  role: string;
  priority: Priority;
  depends_on: string[];
  status: TaskStatus;
  blocked_by: string | null;
  attempts: number;
  max_attempts: number;
  /** Not claimable before this (a retry's backoff). */
  available_at: string;
  source: TaskSource;
  worker_id: string | null;
  lease_expires_at: string | null;
  result: string | null;
  cost_usd: number;
  tokens: number;
  duration_ms: number;
  created_at: string;
  updated_at: string;
  claimed_at: string | null;
  /** When it ended: completed, failed or cancelled. */
  completed_at: string | null;
}

export interface Worker {
  id: string;
  role: string;
  status: WorkerStatus;
  current_task: string | null;
  tasks_completed: number;
  last_seen_at: string;
  cost_usd: number;
}

/** One group of GET /v1/costs (src/routes/costs.ts): `key` is the day, role, worker id or task id. */
export interface CostGroup {
  key: string;
  cost_usd: number;
  tokens: number;
  duration_ms: number;
  /** How many tasks the group's attempts belong to. */
  tasks: number;
}

export interface Question {
  id: string;
  task_id: string;
  worker_id: string;
  text: string;
  status: "open" | "answered";
  answer: string | null;
  created_at: string;
  answered_at: string | null;
}

export interface TaskCounts {
  counts: Record<TaskStatus, number>;
  total: number;
}

export interface TeamSettings {
  id: string;
  name: string;
}

/** One line of a worker's or a task's log (GET /v1/workers/{wid}/logs, /v1/tasks/{id}/logs). */
export interface LogLine {
  at: string;
  worker_id: string;
  task_id: string | null;
  text: string;
}

export interface LogPage {
  lines: LogLine[];
  /** Opaque, always given (an empty log has one too): pass it back as `after=` for the lines written since. */
  cursor: string;
}
