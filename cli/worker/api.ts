import { randomBytes } from "node:crypto";
import type { Priority } from "../../src/domain/tasks";
import type { Question, Task } from "../api-types";
import { retryAfterMs, sleep } from "../client";
import { networkFailure } from "../errors";

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

/** No answer: the server was not reached, or did not answer within the try's deadline. Retried. */
export class NetworkError extends Error {}

/** The request was cut short by the worker's stop signal: never retried. */
export class StoppedError extends Error {}

/** The platform was busy or failed, not the request: worth another try. */
const RETRYABLE = new Set([408, 425, 500, 502, 503, 504]);
/** The longest a Retry-After is waited between two tries of one request. */
const MAX_RETRY_AFTER_MS = 60_000;

/** How one call is tried. */
export interface RequestOptions {
  /** Retries after the first try (default WorkerApiOptions.retries); ignored with `until`. */
  retries?: number;
  /**
   * Keep trying (network errors, timeouts, 5xx, 429) until this epoch ms, re-read before each
   * wait: a report is worth trying for as long as the lease it reports under may be valid.
   */
  until?: () => number;
  /** This try's deadline (default WorkerApiOptions.timeoutMs). */
  timeoutMs?: number;
  /** Cuts a try and the wait before the next short (a StoppedError). */
  signal?: AbortSignal;
  /** No "retrying" line. */
  quiet?: boolean;
}

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

  /**
   * `claimId`: the same on every try (and on a later call that asks what an interrupted claim
   * took): if a try took a task but its answer was lost, the retry gets that task instead of
   * taking a second one (which would sit claimed until its lease expired).
   */
  async claim(workerId: string, role: string, claimId = newClaimId(), options: RequestOptions = {}): Promise<ClaimResult> {
    try {
      const res = await this.request<LeasedTaskResponse>("POST", "/v1/tasks/claim", { worker_id: workerId, role, claim_id: claimId }, { retries: 2, ...options });
      return res.status === 204 || res.body === null ? { kind: "none" } : { kind: "claimed", task: res.body };
    } catch (e) {
      if (e instanceof ApiError && e.status === 429) return { kind: "limited", retryAfterMs: e.retryAfterMs, detail: e.detail };
      throw e;
    }
  }

  async heartbeatWorker(workerId: string, body: { role: string; status: "idle" | "working" | "waiting"; current_task?: string | null }, options: RequestOptions = {}): Promise<void> {
    await this.request("POST", `/v1/workers/${encodeURIComponent(workerId)}/heartbeat`, body, { retries: 1, ...options });
  }

  async heartbeatTask(taskId: string, leaseId: string, options: RequestOptions = {}): Promise<LeasedTaskResponse> {
    return (await this.request<LeasedTaskResponse>("POST", `/v1/tasks/${encodeURIComponent(taskId)}/heartbeat`, { lease_id: leaseId }, { retries: 1, ...options })).body as LeasedTaskResponse;
  }

  async complete(taskId: string, report: AttemptReport, options: RequestOptions = {}): Promise<TaskResponse> {
    return (await this.request<TaskResponse>("POST", `/v1/tasks/${encodeURIComponent(taskId)}/complete`, report, options)).body as TaskResponse;
  }

  async fail(taskId: string, report: AttemptReport, options: RequestOptions = {}): Promise<TaskResponse> {
    return (await this.request<TaskResponse>("POST", `/v1/tasks/${encodeURIComponent(taskId)}/fail`, report, options)).body as TaskResponse;
  }

  /** The task as anyone with a read key sees it (no lease). */
  async task(taskId: string): Promise<TaskStateResponse> {
    return (await this.request<TaskStateResponse>("GET", `/v1/tasks/${encodeURIComponent(taskId)}`, undefined, { retries: 2 })).body as TaskStateResponse;
  }

  /** Gives the task back to the queue without using up its attempt (the worker is stopping). */
  async release(taskId: string, report: Omit<AttemptReport, "result"> & { reason?: string }, options: RequestOptions = {}): Promise<TaskResponse> {
    return (await this.request<TaskResponse>("POST", `/v1/tasks/${encodeURIComponent(taskId)}/release`, report, options)).body as TaskResponse;
  }

  async createTask(body: CreateTask, options: RequestOptions = {}): Promise<{ task: TaskResponse; created: boolean }> {
    const res = await this.request<TaskResponse>("POST", "/v1/tasks", body, options);
    return { task: res.body as TaskResponse, created: res.status === 201 };
  }

  async ask(workerId: string, taskId: string, text: string, options: RequestOptions = {}): Promise<QuestionResponse> {
    return (await this.request<QuestionResponse>("POST", "/v1/questions", { worker_id: workerId, task_id: taskId, text }, options)).body as QuestionResponse;
  }

  async question(id: string, options: RequestOptions = {}): Promise<QuestionResponse> {
    return (await this.request<QuestionResponse>("GET", `/v1/questions/${encodeURIComponent(id)}`, undefined, { retries: 2, ...options })).body as QuestionResponse;
  }

  /** One batch of log lines (1–1,000 lines, each at most 8 KiB), tried once: the log shipper keeps a failed batch and tries it again. */
  async postLogs(workerId: string, body: { task_id?: string; lines: string[] }, options: RequestOptions = {}): Promise<void> {
    await this.request("POST", `/v1/workers/${encodeURIComponent(workerId)}/logs`, body, { retries: 0, quiet: true, ...options });
  }

  private async request<T>(method: string, path: string, body: unknown, o: RequestOptions = {}): Promise<{ status: number; body: T | null }> {
    const retries = o.retries ?? this.options.retries ?? 5;
    for (let tries = 1; ; tries++) {
      let error: unknown;
      try {
        return await this.once<T>(method, path, body, tries, o);
      } catch (e) {
        error = e;
      }
      if (!retryable(error, o.until !== undefined)) throw error;
      // Backoff doubling from minDelayMs to 10 s, randomized; a Retry-After the server sent instead.
      const backoff = Math.min(10_000, (this.options.minDelayMs ?? 500) * 2 ** Math.min(tries - 1, 10)) * (1 + Math.random());
      let delay = error instanceof ApiError && error.retryAfterMs !== null ? Math.min(error.retryAfterMs, MAX_RETRY_AFTER_MS) : backoff;
      if (o.until) {
        const left = o.until() - Date.now();
        if (left <= 0) throw error;
        delay = Math.min(delay, left);
      } else if (tries > retries) throw error;
      if (!o.quiet) this.options.log?.(`${method} ${path} failed (${(error as Error).message}); retrying in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay, o.signal);
      if (o.signal?.aborted) throw new StoppedError(`${method} ${path}: stopped (the worker is stopping)`);
    }
  }

  /** One try, with its deadline (answer body included) cut short by `o.signal`. */
  private async once<T>(method: string, path: string, body: unknown, tries: number, o: RequestOptions): Promise<{ status: number; body: T | null }> {
    const url = new URL(path, this.options.baseUrl);
    const timeoutMs = o.timeoutMs ?? this.options.timeoutMs ?? 30_000;
    if (o.signal?.aborted) throw new StoppedError(`${method} ${path}: stopped (the worker is stopping)`);
    // Each try has its deadline: a server that accepts the connection and never answers must
    // not stall the claim loop or a lease heartbeat (a timeout is retried like a network
    // error), and a stop must not wait it out.
    const limit = AbortSignal.timeout(timeoutMs);
    let res: Response;
    let text: string;
    try {
      res = await this.fetch(url, {
        method,
        headers: { Authorization: `Bearer ${this.options.apiKey}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: o.signal ? AbortSignal.any([limit, o.signal]) : limit,
      });
      text = await res.text();
    } catch (e) {
      if (o.signal?.aborted) throw new StoppedError(`${method} ${path}: stopped (the worker is stopping)`);
      if (limit.aborted) throw new NetworkError(`no answer from ${url.origin} to ${method} ${url.pathname} within ${timeoutMs / 1000} s`, { cause: e });
      // As the people's CLI says it: the URL and the cause (ECONNREFUSED, ENOTFOUND…), not just "fetch failed".
      const network = networkFailure(e);
      if (network !== null) throw new NetworkError(`could not reach ${url.origin} (${method} ${url.pathname}): ${network}`, { cause: e });
      throw e;
    }
    if (res.ok) return { status: res.status, body: text ? (JSON.parse(text) as T) : null };
    throw new ApiError(res.status, problemDetail(text), retryAfterMs(res.headers.get("Retry-After")), tries);
  }
}

/** Network errors, timeouts and 5xx; with a deadline (`until`), 429 too. A garbled answer (a proxy's page as JSON) is tried again as well. */
function retryable(error: unknown, untilDeadline: boolean): boolean {
  if (error instanceof StoppedError) return false;
  if (error instanceof NetworkError || error instanceof SyntaxError) return true;
  if (error instanceof ApiError) return RETRYABLE.has(error.status) || (untilDeadline && error.status === 429);
  return false;
}

export function newClaimId(): string {
  return randomBytes(18).toString("base64url");
}

function problemDetail(text: string): string {
  try {
    const p = JSON.parse(text) as { detail?: string; title?: string };
    return p.detail ?? p.title ?? text;
  } catch {
    return text;
  }
}
