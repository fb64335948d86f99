import { and, desc, eq, inArray, lt, or, sql } from "drizzle-orm";
import { ASKABLE_STATUSES } from "../domain/tasks";
import type { Db } from "./client";
import { questions, tasks, workers } from "./schema";

/** The questions' statements. Asking and answering each run as one D1 batch (a transaction). */

export type QuestionRow = typeof questions.$inferSelect;

const selectQuestion = (db: Db, teamId: string, id: string) => db.select().from(questions).where(and(eq(questions.teamId, teamId), eq(questions.id, id)));

export async function findQuestion(db: Db, teamId: string, id: string): Promise<QuestionRow | undefined> {
  return (await selectQuestion(db, teamId, id))[0];
}

/** The open question a worker asked about a task (a task has at most one open at a time). */
export async function findOpenQuestion(db: Db, teamId: string, taskId: string, workerId: string): Promise<QuestionRow | undefined> {
  const rows = await db
    .select()
    .from(questions)
    .where(and(eq(questions.teamId, teamId), eq(questions.taskId, taskId), eq(questions.workerId, workerId), eq(questions.status, "open")))
    .limit(1);
  return rows[0];
}

/**
 * Asks a question about a task the worker holds: the question is inserted only while the task
 * is claimed or running under `workerId` with an unexpired lease (checked in the insert
 * itself), then the task becomes `waiting_input` and the worker, if the team has its row,
 * `waiting` — both only if that insert happened. Undefined when the task was not askable.
 */
export async function askQuestion(db: Db, q: { teamId: string; id: string; taskId: string; workerId: string; text: string; now: string }) {
  const asked = sql`EXISTS (SELECT 1 FROM questions q WHERE q.team_id = ${q.teamId} AND q.id = ${q.id})`;
  const statuses = sql.join(ASKABLE_STATUSES.map((s) => sql`${s}`), sql`, `);
  const [inserted, task, worker, current] = await db.batch([
    db
      .insert(questions)
      .select(
        sql`SELECT t.team_id, ${q.id}, t.id, t.worker_id, ${q.text}, 'open', NULL, NULL, ${q.now}, NULL, 0 FROM tasks t
            WHERE t.team_id = ${q.teamId} AND t.id = ${q.taskId} AND t.worker_id = ${q.workerId}
              AND t.status IN (${statuses}) AND t.lease_expires_at > ${q.now}`,
      )
      .returning({ id: questions.id }),
    db
      .update(tasks)
      .set({ status: "waiting_input", updatedAt: q.now })
      .where(and(eq(tasks.teamId, q.teamId), eq(tasks.id, q.taskId), inArray(tasks.status, [...ASKABLE_STATUSES]), asked))
      .returning(),
    db
      .update(workers)
      .set({ status: "waiting", currentTask: q.taskId, lastSeenAt: q.now })
      .where(and(eq(workers.teamId, q.teamId), eq(workers.id, q.workerId), asked))
      .returning(),
    selectQuestion(db, q.teamId, q.id),
  ]);
  return inserted.length > 0 && current[0] ? { question: current[0], task: task[0], worker: worker[0] } : undefined;
}

/**
 * Answers an open question (once: undefined when it was not open). The task goes back to
 * `running` if it is still `waiting_input` with no other open question (it may have been
 * re-queued and claimed again meanwhile, and have asked anew), and the worker that asked, if
 * it is `waiting` with no other open question, back to `working`.
 */
export async function answerQuestion(db: Db, a: { teamId: string; id: string; taskId: string; workerId: string; answer: string; answeredBy: string; now: string }) {
  const openFor = (column: "task_id" | "worker_id", value: string) =>
    sql`NOT EXISTS (SELECT 1 FROM questions o WHERE o.team_id = ${a.teamId} AND o.${sql.raw(column)} = ${value} AND o.status = 'open')`;
  // Only while the attempt that asked still holds its lease: once it expired the attempt has
  // ended (the cron withdraws the question when it takes the task back), so an answer then
  // would be told "answered" and reach no one, whether or not the cron has run yet.
  const attemptLive = sql`EXISTS (SELECT 1 FROM tasks t WHERE t.team_id = ${a.teamId} AND t.id = ${a.taskId} AND t.lease_expires_at > ${a.now})`;
  const [answered, task, worker] = await db.batch([
    db
      .update(questions)
      .set({ status: "answered", answer: a.answer, answeredBy: a.answeredBy, answeredAt: a.now })
      .where(and(eq(questions.teamId, a.teamId), eq(questions.id, a.id), eq(questions.status, "open"), attemptLive))
      .returning(),
    db
      .update(tasks)
      .set({ status: "running", updatedAt: a.now })
      .where(and(eq(tasks.teamId, a.teamId), eq(tasks.id, a.taskId), eq(tasks.status, "waiting_input"), openFor("task_id", a.taskId)))
      .returning(),
    db
      .update(workers)
      .set({ status: "working" })
      .where(and(eq(workers.teamId, a.teamId), eq(workers.id, a.workerId), eq(workers.status, "waiting"), openFor("worker_id", a.workerId)))
      .returning(),
  ]);
  return answered[0] ? { question: answered[0], task: task[0], worker: worker[0] } : undefined;
}

/**
 * Withdraws the open questions of `taskIds` whose task is no longer waiting for an answer:
 * the attempt that asked ended (completed, failed, released, cancelled, or its lease expired).
 * Put after the statement that changed the task, in the same batch, so an old question can
 * never hold a later attempt in `waiting_input` nor stop it from asking anew. Tasks still
 * `waiting_input` keep theirs (at most 50 ids: D1 binds at most 100 parameters).
 */
export function withdrawQuestions(db: Db, teamId: string, taskIds: string[]) {
  // Written out: drizzle may render a column without its table, which the subquery would read as its own.
  const stillWaiting = sql`NOT EXISTS (SELECT 1 FROM tasks w WHERE w.team_id = questions.team_id AND w.id = questions.task_id AND w.status = 'waiting_input')`;
  return db
    .update(questions)
    .set({ status: "withdrawn" })
    .where(and(eq(questions.teamId, teamId), inArray(questions.taskId, taskIds), eq(questions.status, "open"), stillWaiting))
    .returning();
}

/** The team's questions, newest first, optionally by status, after the cursor `[created_at, id]`. */
export function listQuestions(db: Db, teamId: string, status: string | undefined, limit: number, after: [string, string] | null) {
  return db
    .select()
    .from(questions)
    .where(
      and(
        eq(questions.teamId, teamId),
        status ? eq(questions.status, status) : undefined,
        after ? or(lt(questions.createdAt, after[0]), and(eq(questions.createdAt, after[0]), lt(questions.id, after[1]))) : undefined,
      ),
    )
    .orderBy(desc(questions.createdAt), desc(questions.id))
    .limit(limit)
    .all();
}
