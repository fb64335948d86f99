import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { dbOf } from "../db/client";
import { batchesFrom, hasLogs, insertLogBatch, latestBatches, type LogBatchRow, type LogView } from "../db/logs";
import { findTask } from "../db/tasks";
import { findWorker } from "../db/workers";
import {
  cursorAfter,
  DEFAULT_TAIL_LINES,
  LOG_START,
  type LogCursor,
  logKey,
  MAX_BATCHES_PER_READ,
  MAX_LINE_BYTES,
  MAX_LINES_PER_BATCH,
  MAX_TAIL_LINES,
  planAfter,
  planTail,
  type Slice,
  utf8Length,
} from "../domain/logs";
import type { AppEnv } from "../lib/app-env";
import { authenticate, requireScope } from "../lib/auth";
import { fromBase64Url, toBase64Url, toHex, utf8 } from "../lib/encoding";
import { ApiError } from "../lib/errors";
import { log } from "../lib/log";
import { json, newRouter, problemResponses, security } from "../lib/openapi";
import { taskId, taskIdParam, workerIdSchema } from "../lib/task-schemas";

/**
 * Worker logs: each batch of lines is one JSONL object in R2 (R2 cannot append), indexed by
 * a row in D1 (log_batches) so a tail is found without listing R2. Reads return the last N
 * lines, or the lines after a cursor, which is how a CLI follows a worker or a task.
 */
export const logRoutes = newRouter();

const workerIdParam = z.object({ wid: workerIdSchema });

const logLine = z.string().refine((s) => utf8Length(s) <= MAX_LINE_BYTES, { message: `Longer than ${MAX_LINE_BYTES} bytes of UTF-8 (8 KiB)` });

export const appendLogsSchema = z.object({
  task_id: taskId.nullable().optional().describe("the team's task these lines are about"),
  lines: z.array(logLine).min(1).max(MAX_LINES_PER_BATCH).describe(`1 to ${MAX_LINES_PER_BATCH} lines, oldest first, each up to 8 KiB of UTF-8`),
});
export type AppendLogs = z.input<typeof appendLogsSchema>;

export const appendedLogsSchema = z
  .object({
    batch_id: z.string(),
    lines: z.number().int(),
    cursor: z.string().describe("the position after this batch: `after=` it reads only later lines"),
  })
  .openapi("AppendedLogs");
export type AppendedLogsResponse = z.infer<typeof appendedLogsSchema>;

export const logLineSchema = z.object({
  at: z.string().describe("when its batch was received"),
  worker_id: z.string(),
  task_id: z.string().nullable(),
  text: z.string(),
});
export const logTailSchema = z
  .object({
    lines: z.array(logLineSchema).describe("oldest first"),
    cursor: z.string().describe("opaque; pass it as `after` to read only the lines written since"),
  })
  .openapi("LogLines");
export type LogLinesResponse = z.infer<typeof logTailSchema>;

const readQuery = z.object({
  lines: z.coerce.number().int().min(1).max(MAX_TAIL_LINES).default(DEFAULT_TAIL_LINES).describe(`how many lines, at most ${MAX_TAIL_LINES}`),
  after: z.string().max(200).optional().describe("a cursor from an earlier answer: only lines written after it, oldest first"),
});

/** The cursor as clients see it: base64url of `[seq, line]`. */
export function encodeLogCursor(c: LogCursor): string {
  return toBase64Url(utf8.encode(JSON.stringify([c.seq, c.line])));
}

function decodeLogCursor(cursor: string): LogCursor {
  try {
    const key = JSON.parse(new TextDecoder().decode(fromBase64Url(cursor))) as unknown;
    if (Array.isArray(key) && key.length === 2 && key.every((k) => Number.isSafeInteger(k) && (k as number) >= 0) && (key[1] as number) <= MAX_LINES_PER_BATCH) {
      return { seq: key[0] as number, line: key[1] as number };
    }
  } catch {
    // fall through
  }
  throw new ApiError("validation", "The cursor is not one this API gave out.", [{ path: "after", message: "invalid cursor" }]);
}

logRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/workers/{wid}/logs",
    summary: "A worker appends a batch of log lines (stored in R2 as one object)",
    description:
      "The worker need not have sent a heartbeat yet: a daemon may log before it does, and logging does not create the worker. `task_id`, when given, must be one of the team's tasks.",
    security,
    middleware: [authenticate, requireScope("agent")] as const,
    request: { params: workerIdParam, body: { required: true, ...json(appendLogsSchema) } },
    responses: { 202: { description: "Stored", ...json(appendedLogsSchema) }, ...problemResponses, 404: { description: "`task_id` is not one of the team's tasks" } },
  }),
  async (c) => {
    const { wid } = c.req.valid("param");
    const body = c.req.valid("json");
    const teamId = c.get("auth").team_id;
    const taskIdOrNull = body.task_id ?? null;
    const db = dbOf(c.env);
    if (taskIdOrNull !== null && !(await findTask(db, teamId, taskIdOrNull))) throw new ApiError("not_found", `No task ${taskIdOrNull}.`);

    const now = new Date();
    const at = now.toISOString();
    // Time first, so a team's keys under a worker sort as its batches were received.
    const id = `logb_${now.getTime().toString(16).padStart(12, "0")}${toHex(crypto.getRandomValues(new Uint8Array(8)))}`;
    const key = logKey(teamId, wid, id);
    const object = utf8.encode(body.lines.map((text) => `${JSON.stringify({ at, worker_id: wid, task_id: taskIdOrNull, text })}\n`).join(""));
    // R2 first, then the index row: a row is visible only once its object exists, so a reader
    // following the cursor never passes a batch whose lines are still on their way.
    await c.env.BUCKET.put(key, object, {
      httpMetadata: { contentType: "application/x-ndjson" },
      customMetadata: { team_id: teamId, worker_id: wid, batch_id: id, ...(taskIdOrNull ? { task_id: taskIdOrNull } : {}) },
    });
    let seq: number;
    try {
      seq = await insertLogBatch(db, { teamId, id, workerId: wid, taskId: taskIdOrNull, r2Key: key, lineCount: body.lines.length, bytes: object.byteLength, createdAt: at, nowMs: now.getTime() });
    } catch (err) {
      await c.env.BUCKET.delete(key).catch(() => {}); // an unindexed object would never be read nor expired
      throw err;
    }
    return c.json({ batch_id: id, lines: body.lines.length, cursor: encodeLogCursor({ seq, line: body.lines.length }) }, 202);
  },
);

logRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/workers/{wid}/logs",
    summary: "A worker's log: the last N lines, or (with `after`) the lines since a cursor; optionally of one task",
    description: `The last \`lines\` lines (default ${DEFAULT_TAIL_LINES}, at most ${MAX_TAIL_LINES}) oldest first; with \`after\`, up to \`lines\` lines written after that cursor. Poll with each answer's cursor to follow. A worker never seen (no worker row, no logs) is 404.`,
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { params: workerIdParam, query: readQuery.extend({ task_id: taskId.optional().describe("only the lines about this task") }) },
    responses: { 200: { description: "Lines", ...json(logTailSchema) }, ...problemResponses },
  }),
  async (c) => {
    const { wid } = c.req.valid("param");
    const { task_id, ...q } = c.req.valid("query");
    const teamId = c.get("auth").team_id;
    const db = dbOf(c.env);
    if (task_id !== undefined && !(await findTask(db, teamId, task_id))) throw new ApiError("not_found", `No task ${task_id}.`);
    const result = await readLogs(c, { teamId, workerId: wid, taskId: task_id }, q);
    // Only an empty answer needs to know whether the worker exists at all.
    if (result.lines.length === 0 && !(await findWorker(db, teamId, wid)) && !(await hasLogs(db, teamId, wid))) throw new ApiError("not_found", `No worker ${wid}.`);
    return c.json(result, 200);
  },
);

logRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/tasks/{id}/logs",
    summary: "A task's log, from every worker that logged about it: the last N lines, or (with `after`) the lines since a cursor",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { params: taskIdParam, query: readQuery },
    responses: { 200: { description: "Lines", ...json(logTailSchema) }, ...problemResponses },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const teamId = c.get("auth").team_id;
    if (!(await findTask(dbOf(c.env), teamId, id))) throw new ApiError("not_found", `No task ${id}.`);
    return c.json(await readLogs(c, { teamId, taskId: id }, c.req.valid("query")), 200);
  },
);

/** The lines a read returns (the tail, or those after the cursor) and the cursor after them. */
async function readLogs(c: Context<AppEnv>, view: LogView, q: { lines: number; after?: string | undefined }): Promise<LogLinesResponse> {
  const db = dbOf(c.env);
  // Each batch holds at least one line, so `lines` batches always suffice.
  const batches = Math.min(q.lines, MAX_BATCHES_PER_READ);
  let slices: Slice<LogBatchRow>[];
  let before: LogCursor;
  if (q.after === undefined) {
    slices = planTail(await latestBatches(db, view, batches), q.lines);
    before = LOG_START;
  } else {
    before = decodeLogCursor(q.after);
    // One more: the cursor's own batch may have been read to its end already.
    slices = planAfter(await batchesFrom(db, view, before.seq, batches + 1), before, q.lines);
  }
  const texts = await mapLimit(slices, 8, (s) => batchLines(c.env.BUCKET, s.batch));
  const lines = slices.flatMap((s, i) => (texts[i] ?? []).slice(s.from, s.to).map((text) => ({ at: s.batch.createdAt, worker_id: s.batch.workerId, task_id: s.batch.taskId, text })));
  return { lines, cursor: encodeLogCursor(cursorAfter(slices, before)) };
}

/**
 * A batch's lines from R2. A missing object (deleted, or expired by a bucket lifecycle rule)
 * or an unreadable one is skipped: the read goes on, and the cursor moves past it.
 */
async function batchLines(bucket: R2Bucket, batch: LogBatchRow): Promise<string[]> {
  const object = await bucket.get(batch.r2Key);
  if (!object) {
    log("warn", "log batch missing in R2", { team_id: batch.teamId, batch_id: batch.id, key: batch.r2Key });
    return [];
  }
  const text = await object.text();
  try {
    return text
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => {
        const parsed = JSON.parse(l) as { text?: unknown };
        if (typeof parsed.text !== "string") throw new Error("a line without text");
        return parsed.text;
      });
  } catch (err) {
    log("warn", "log batch unreadable", { team_id: batch.teamId, batch_id: batch.id, key: batch.r2Key, error: err instanceof Error ? err.message : String(err) });
    return [];
  }
}

/** `fn` over `items`, at most `limit` at a time, results in order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}
