import { randomBytes } from "node:crypto";
import pRetry, { AbortError } from "p-retry";
import type { Priority } from "../../src/domain/tasks";
import type { Question, Task } from "../api-types";
import { retryAfterMs } from "../client";

// The daemon reads the same shapes as the people's commands (cli/api-types.ts).
export type TaskResponse = Task;
export type QuestionResponse = Question;
/** A task with what tells how its last attempt ended (src/lib/task-schemas.ts). */
export interface TaskStateResponse extends TaskResponse {
  available_at: string;
  lease_expires_at: string | null;
}
export interface LeasedTaskResponse extends TaskResponse {
  lease: { id: string; expires_at: string };
}
export interface CreateTask {
  title: string;
  description?: string;
  role: string;
  priority?: Priority;
  depends_on?: string[];
  idempotency_key?: string;
  source?: "manual" | "planner";
}

/** An answer the daemon acts on: 409 (lease lost), 429 (limit), 404 … */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly retryAfterMs: number | null,
    /** The try that got this answer (from 1): past the first, an earlier try may have been handled with its answer lost. */
    readonly tries = 1,
  ) {
    super(`HTTP ${status}: ${detail.slice(0, 300)}`);
  }
}

/** The platform was busy or failed, not the request: worth another try. */
const RETRYABLE = new Set([408, 425, 500, 502, 503, 504]);

export interface WorkerApiOptions {
  baseUrl: string;
  apiKey: string;
  /** Retries after the first try for calls that must land (complete, fail, create); default 5. */
  retries?: number;
  minDelayMs?: number;
  /** Each try's deadline, answer body included (default 30 s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
  log?: (line: string) => void;
}

export type ClaimResult = { kind: "claimed"; task: LeasedTaskResponse } | { kind: "none" } | { kind: "limited"; retryAfterMs: number | null; detail: string };

export interface AttemptReport {
  lease_id: string;
  result?: string;
  cost_usd?: number;
  tokens?: number;
  duration_ms?: number;
}

/** The worker's side of the task API, with retries on network errors and 5xx. */
export class WorkerApi {
  private readonly fetch: typeof fetch;
  constructor(private readonly options: WorkerApiOptions) {
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  async claim(workerId: string, role: string): Promise<ClaimResult> {
    // The same claim_id on every try: if a try took a task but its answer was lost, the retry
    // gets that task instead of taking a second one (which would sit claimed until its lease expired).
    const claim_id = randomBytes(18).toString("base64url");
    try {
      const res = await this.request<LeasedTaskResponse>("POST", "/v1/tasks/claim", { worker_id: workerId, role, claim_id }, 2);
      return res.status === 204 || res.body === null ? { kind: "none" } : { kind: "claimed", task: res.body };
    } catch (e) {
      if (e instanceof ApiError && e.status === 429) return { kind: "limited", retryAfterMs: e.retryAfterMs, detail: e.detail };
      throw e;
    }
  }

  async heartbeatWorker(workerId: string, body: { role: string; status: "idle" | "working" | "waiting"; current_task?: string | null }): Promise<void> {
    await this.request("POST", `/v1/workers/${encodeURIComponent(workerId)}/heartbeat`, body, 1);
  }

  async heartbeatTask(taskId: string, leaseId: string): Promise<LeasedTaskResponse> {
    return (await this.request<LeasedTaskResponse>("POST", `/v1/tasks/${encodeURIComponent(taskId)}/heartbeat`, { lease_id: leaseId }, 1)).body as LeasedTaskResponse;
  }

  async complete(taskId: string, report: AttemptReport): Promise<TaskResponse> {
    return (await this.request<TaskResponse>("POST", `/v1/tasks/${encodeURIComponent(taskId)}/complete`, report)).body as TaskResponse;
  }

  async fail(taskId: string, report: AttemptReport): Promise<TaskResponse> {
    return (await this.request<TaskResponse>("POST", `/v1/tasks/${encodeURIComponent(taskId)}/fail`, report)).body as TaskResponse;
  }

  /** The task as anyone with a read key sees it (no lease). */
  async task(taskId: string): Promise<TaskStateResponse> {
    return (await this.request<TaskStateResponse>("GET", `/v1/tasks/${encodeURIComponent(taskId)}`, undefined, 2)).body as TaskStateResponse;
  }

  /** Gives the task back to the queue without using up its attempt (the worker is stopping). */
  async release(taskId: string, report: Omit<AttemptReport, "result"> & { reason?: string }): Promise<TaskResponse> {
    return (await this.request<TaskResponse>("POST", `/v1/tasks/${encodeURIComponent(taskId)}/release`, report)).body as TaskResponse;
  }

  async createTask(body: CreateTask): Promise<{ task: TaskResponse; created: boolean }> {
    const res = await this.request<TaskResponse>("POST", "/v1/tasks", body);
    return { task: res.body as TaskResponse, created: res.status === 201 };
  }

  async ask(workerId: string, taskId: string, text: string): Promise<QuestionResponse> {
    return (await this.request<QuestionResponse>("POST", "/v1/questions", { worker_id: workerId, task_id: taskId, text })).body as QuestionResponse;
  }

  async question(id: string): Promise<QuestionResponse> {
    return (await this.request<QuestionResponse>("GET", `/v1/questions/${encodeURIComponent(id)}`, undefined, 2)).body as QuestionResponse;
  }

  /** One batch of log lines (1–1,000 lines, each at most 8 KiB). One retry: logs are best effort. */
  async postLogs(workerId: string, body: { task_id?: string; lines: string[] }): Promise<void> {
    await this.request("POST", `/v1/workers/${encodeURIComponent(workerId)}/logs`, body, 1, true);
  }

  private async request<T>(method: string, path: string, body?: unknown, retries = this.options.retries ?? 5, quiet = false): Promise<{ status: number; body: T | null }> {
    let tries = 0;
    return pRetry(
      async () => {
        tries += 1;
        // Each try has its deadline: a server that accepts the connection and never answers
        // must not stall the claim loop or a lease heartbeat (a timeout is retried like a network error).
        const signal = AbortSignal.timeout(this.options.timeoutMs ?? 30_000);
        const res = await this.fetch(new URL(path, this.options.baseUrl), {
          method,
          headers: { Authorization: `Bearer ${this.options.apiKey}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
        });
        const text = await res.text();
        if (res.ok) return { status: res.status, body: text ? (JSON.parse(text) as T) : null };
        const error = new ApiError(res.status, problemDetail(text), retryAfterMs(res.headers.get("Retry-After")), tries);
        throw RETRYABLE.has(res.status) ? error : new AbortError(error);
      },
      {
        retries,
        minTimeout: this.options.minDelayMs ?? 500,
        maxTimeout: 10_000,
        randomize: true,
        onFailedAttempt: ({ error, retriesLeft }) => {
          if (retriesLeft > 0 && !quiet) this.options.log?.(`${method} ${path} failed (${error.message}); retrying`);
        },
      },
    ).catch((error: unknown) => {
      throw error instanceof AbortError ? error.originalError : error;
    });
  }
}

function problemDetail(text: string): string {
  try {
    const p = JSON.parse(text) as { detail?: string; title?: string };
    return p.detail ?? p.title ?? text;
  } catch {
    return text;
  }
}
