import { createRoute, z } from "@hono/zod-openapi";
import { dbOf } from "../db/client";
import { answerQuestion, askQuestion, findOpenQuestion, findQuestion, listQuestions, type QuestionRow } from "../db/questions";
import { findTask } from "../db/tasks";
import { checkAsk, type TaskStatus } from "../domain/tasks";
import { authenticate, requireScope } from "../lib/auth";
import { newId } from "../lib/crypto";
import { ApiError } from "../lib/errors";
import { clientId } from "../lib/ids";
import { json, newRouter, problemResponses, security } from "../lib/openapi";
import { taskEvent, workerEvent } from "../lib/task-events";
import { publishTeamEvents, teamEvent } from "../lib/team-stream";
import { decodeCursor, listQuery, listSchema, page } from "../lib/pagination";
import { QUESTION_STATUSES, questionSchema, taskId, toQuestion, workerIdSchema } from "../lib/task-schemas";

/** Questions a worker asks a person about the task it holds, and their answers. */
export const questionRoutes = newRouter();

const qidParam = z.object({ qid: clientId.describe("a question id, as POST /v1/questions gave it") });
const MAX_TEXT = 20_000;
const markdown = z.string().trim().min(1).max(MAX_TEXT).describe("Markdown");


/** Why a question that is not open takes no answer. */
function notOpen(row: QuestionRow): string {
  if (row.status === "open") return `The attempt of task ${row.taskId} that asked it has ended: its lease expired (the cron withdraws the question when it takes the task back, and a later attempt asks anew).`;
  if (row.status === "withdrawn") return `The question was withdrawn: the attempt of task ${row.taskId} that asked it ended before an answer (a later attempt asks anew).`;
  return `The question was already answered at ${row.answeredAt}; it is answered once.`;
}

export const askSchema = z.object({ worker_id: workerIdSchema, task_id: taskId, text: markdown });


questionRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/questions",
    summary: "A worker asks a person about the task it holds (claimed or running); the task becomes waiting_input and the worker waiting",
    description: "The task's lease keeps counting while it waits: keep heartbeating it. Poll `GET /v1/questions/{qid}` for the answer.",
    security,
    middleware: [authenticate, requireScope("agent")] as const,
    request: { body: { required: true, ...json(askSchema) } },
    responses: {
      201: { description: "Asked", ...json(questionSchema) },
      200: { description: "Already asked: the same worker's open question with the same text (a retried request)", ...json(questionSchema) },
      409: { description: "The task is not claimed or running, not held by this worker, or its lease expired" },
      ...problemResponses,
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const teamId = c.get("auth").team_id;
    const db = dbOf(c.env);
    const now = new Date().toISOString();
    const task = await findTask(db, teamId, body.task_id);
    if (!task) throw new ApiError("not_found", `No task ${body.task_id}.`);
    const verdict = checkAsk({ status: task.status as TaskStatus, worker_id: task.workerId, lease_expires_at: task.leaseExpiresAt }, body.worker_id, now);
    if (!verdict.ok) {
      // A retried ask (its first answer lost on the way) finds its own question open: the same
      // worker, the same text, the task waiting on it under a live lease. That is the question
      // asked, answered again (200), not a second one refused: the asker would take a 409 for a
      // lost lease and walk away from a task that waits for it.
      if (task.status === "waiting_input" && task.workerId === body.worker_id && task.leaseExpiresAt !== null && task.leaseExpiresAt > now) {
        const open = await findOpenQuestion(db, teamId, body.task_id, body.worker_id);
        if (open && open.text === body.text) return c.json(toQuestion(open), 200);
      }
      throw new ApiError("conflict", verdict.reason);
    }
    const asked = await askQuestion(db, { teamId, id: newId("q"), taskId: body.task_id, workerId: body.worker_id, text: body.text, now });
    if (!asked) throw new ApiError("conflict", `The task changed while the question was asked; it is ${(await findTask(db, teamId, body.task_id))?.status}.`);
    await publishTeamEvents(c.env, teamId, [
      teamEvent("question.asked", { question: toQuestion(asked.question) }, now),
      ...(asked.task ? [taskEvent("task.waiting_input", asked.task)] : []),
      ...(asked.worker ? [workerEvent(asked.worker, now)] : []),
    ]);
    return c.json(toQuestion(asked.question), 201);
  },
);

questionRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/questions",
    summary: "The team's questions, newest first, by status",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { query: listQuery.extend({ status: z.enum(QUESTION_STATUSES).optional() }) },
    responses: { 200: { description: "Questions", ...json(listSchema(questionSchema)) }, ...problemResponses },
  }),
  async (c) => {
    const { limit, cursor, status } = c.req.valid("query");
    const after = decodeCursor(cursor, 2) as [string, string] | null;
    const rows = await listQuestions(dbOf(c.env), c.get("auth").team_id, status, limit + 1, after);
    return c.json(page(rows.map(toQuestion), limit, (q) => [q.created_at, q.id]), 200);
  },
);

questionRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/questions/{qid}",
    summary: "A question and, once answered, its answer (the asking worker polls this)",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { params: qidParam },
    responses: { 200: { description: "Question", ...json(questionSchema) }, ...problemResponses },
  }),
  async (c) => {
    const { qid } = c.req.valid("param");
    const row = await findQuestion(dbOf(c.env), c.get("auth").team_id, qid);
    if (!row) throw new ApiError("not_found", `No question ${qid}.`);
    return c.json(toQuestion(row), 200);
  },
);

questionRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/questions/{qid}/answer",
    summary: "Answer a question, once; the task goes back to running (if still waiting_input) and the worker to working",
    security,
    middleware: [authenticate, requireScope("operator")] as const,
    request: { params: qidParam, body: { required: true, ...json(z.object({ text: markdown })) } },
    responses: { 200: { description: "Answered", ...json(questionSchema) }, 409: { description: "The question was already answered, or withdrawn (the attempt that asked it ended)" }, ...problemResponses },
  }),
  async (c) => {
    const { qid } = c.req.valid("param");
    const { text } = c.req.valid("json");
    const auth = c.get("auth");
    const db = dbOf(c.env);
    const row = await findQuestion(db, auth.team_id, qid);
    if (!row) throw new ApiError("not_found", `No question ${qid}.`);
    if (row.status !== "open") throw new ApiError("conflict", notOpen(row));
    const now = new Date().toISOString();
    const answered = await answerQuestion(db, { teamId: auth.team_id, id: qid, taskId: row.taskId, workerId: row.workerId, answer: text, answeredBy: auth.key_id, now });
    if (!answered) {
      const current = await findQuestion(db, auth.team_id, qid);
      if (!current) throw new ApiError("not_found", `No question ${qid}.`);
      throw new ApiError("conflict", current.status === "open" ? notOpen(current) : `It changed while this answer was sent: ${notOpen(current)}`);
    }
    await publishTeamEvents(c.env, auth.team_id, [
      teamEvent("question.answered", { question: toQuestion(answered.question) }, now),
      ...(answered.task ? [taskEvent("task.running", answered.task)] : []),
      ...(answered.worker ? [workerEvent(answered.worker, now)] : []),
    ]);
    return c.json(toQuestion(answered.question), 200);
  },
);
