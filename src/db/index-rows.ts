import { and, asc, eq, gt, inArray, or, sql } from "drizzle-orm";
import type { SessionSummary } from "../../durable-objects/session-hub";
import type { TopicSummary } from "../domain/topic";
import type { Db } from "./client";
import { alphas, sessions, topics } from "./schema";

/**
 * The D1 rows derived from the hubs. Each upsert carries the hub's version and only
 * overwrites an older one, so a retried or reordered write never undoes a newer one.
 */
export function upsertSessionRow(db: Db, teamId: string, s: SessionSummary, version: number) {
  const row = { teamId, id: s.id, status: s.status, title: s.title, metadata: s.metadata, createdAt: s.created_at, updatedAt: s.updated_at, version };
  return db
    .insert(sessions)
    .values(row)
    .onConflictDoUpdate({
      target: [sessions.teamId, sessions.id],
      set: { status: row.status, title: row.title, metadata: row.metadata, updatedAt: row.updatedAt, version: row.version },
      setWhere: sql`excluded.version > ${sessions.version}`,
    });
}

export function upsertTopicRow(db: Db, teamId: string, sessionId: string, t: TopicSummary, version: number) {
  const row = { teamId, sessionId, id: t.id, status: t.status, currentStep: t.current_step, hypothesis: t.hypothesis, createdAt: t.created_at, updatedAt: t.updated_at, version };
  return db
    .insert(topics)
    .values(row)
    .onConflictDoUpdate({
      target: [topics.teamId, topics.sessionId, topics.id],
      set: { status: row.status, currentStep: row.currentStep, hypothesis: row.hypothesis, updatedAt: row.updatedAt, version: row.version },
      setWhere: sql`excluded.version > ${topics.version}`,
    });
}

/** The rows of the topic's alphas among `ids` (all of them without `ids`). */
export function upsertAlphaRows(db: Db, teamId: string, sessionId: string, t: TopicSummary, version: number, ids?: ReadonlySet<string>) {
  return t.alphas.filter((a) => !ids || ids.has(a.id)).map((a) =>
    db
      .insert(alphas)
      .values({ teamId, sessionId, topicId: t.id, id: a.id, name: a.name, expression: a.expression, metrics: a.metrics, passed: a.passed, registeredAt: a.registered_at, evaluatedAt: a.evaluated_at, version })
      .onConflictDoUpdate({
        target: [alphas.teamId, alphas.sessionId, alphas.topicId, alphas.id],
        set: { name: a.name, expression: a.expression, metrics: a.metrics, passed: a.passed, registeredAt: a.registered_at, evaluatedAt: a.evaluated_at, version },
        setWhere: sql`excluded.version > ${alphas.version}`,
      }),
  );
}

/** Writes a topic's row and its alphas in one batch. */
export async function indexTopic(db: Db, teamId: string, sessionId: string, t: TopicSummary, version: number): Promise<void> {
  await db.batch([upsertTopicRow(db, teamId, sessionId, t, version), ...upsertAlphaRows(db, teamId, sessionId, t, version)]);
}

/** Which of these session ids the team has (D1 allows 100 bound parameters a statement). */
export async function existingSessionIds(db: Db, teamId: string, ids: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < ids.length; i += 90) {
    const chunk = ids.slice(i, i + 90);
    const rows = await db.select({ id: sessions.id }).from(sessions).where(and(eq(sessions.teamId, teamId), inArray(sessions.id, chunk))).all();
    for (const r of rows) found.add(r.id);
  }
  return found;
}

/** A topic as its index row has it: what GET /v1/sessions/:sid/topics lists. */
export function topicListItem(t: typeof topics.$inferSelect) {
  return { id: t.id, status: t.status, current_step: t.currentStep, hypothesis: t.hypothesis, created_at: t.createdAt, updated_at: t.updatedAt };
}

/** A session's topics from the index, oldest first, after `after` ([created_at, id]); `limit` rows. */
export function sessionTopicRows(db: Db, teamId: string, sessionId: string, limit: number, after: [string, string] | null) {
  return db
    .select()
    .from(topics)
    .where(and(eq(topics.teamId, teamId), eq(topics.sessionId, sessionId), after ? or(gt(topics.createdAt, after[0]), and(eq(topics.createdAt, after[0]), gt(topics.id, after[1]))) : undefined))
    .orderBy(asc(topics.createdAt), asc(topics.id))
    .limit(limit);
}

/** How many topics the index has for a session. */
export function countSessionTopics(db: Db, teamId: string, sessionId: string) {
  return db.select({ n: sql<number>`count(*)` }).from(topics).where(and(eq(topics.teamId, teamId), eq(topics.sessionId, sessionId)));
}
