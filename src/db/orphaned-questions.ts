import { sql } from "drizzle-orm";
import type { Db } from "./client";
import { questions } from "./schema";

/**
 * The cron's withdrawal, in every team: each open question no attempt waits on any more —
 * its task is not `waiting_input` (the attempt that asked ended: expired, completed, failed,
 * released or cancelled), or a newer open question of the same task is what the task waits on
 * (a later attempt asked before the old one was withdrawn). Asking writes the question and
 * `waiting_input` in one batch, so a question a task really waits on is never taken.
 *
 * Found by state, not from the leases this run expired: the expiry is its own statement, so
 * a withdrawal that failed after it (or a run that stopped between them) is made up by the
 * next run. Driven by the teams (the questions index leads with team_id), at most `limit` a run.
 */
export function withdrawOrphanedQuestions(db: Db, limit = 500) {
  // Written out: drizzle may render a column without its table, which a subquery would read as its own.
  return db
    .update(questions)
    .set({ status: "withdrawn" })
    .where(
      sql`rowid IN (SELECT q.rowid FROM questions q WHERE q.team_id IN (SELECT id FROM teams) AND q.status = 'open' AND (
        NOT EXISTS (SELECT 1 FROM tasks t WHERE t.team_id = q.team_id AND t.id = q.task_id AND t.status = 'waiting_input')
        OR EXISTS (SELECT 1 FROM questions n WHERE n.team_id = q.team_id AND n.task_id = q.task_id AND n.status = 'open' AND (n.created_at > q.created_at OR (n.created_at = q.created_at AND n.id > q.id)))
      ) LIMIT ${limit})`,
    )
    .returning()
    .all();
}
