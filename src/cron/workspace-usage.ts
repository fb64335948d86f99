import { type Db, dbOf } from "../db/client";
import {
  type FileRef,
  type FileRow,
  type TopicRange,
  type Version,
  fileKey,
  forgetVersions,
  parseFileKey,
  recordVersions,
  rowsInRanges,
  sameVersion,
  topicsWithRows,
  versionOf,
} from "../db/workspace";
import { workspaceKey } from "../domain/workspace-path";
import { log } from "../lib/log";

/**
 * The reconciliation of workspace usage: every minute the cron compares a bounded slice of
 * `workspace_files` rows with the R2 objects they account for, and settles each mismatch as a
 * request does after its write (src/db/workspace.ts: head the key, then record what is there
 * unless a newer version is recorded, or forget the versions R2 showed gone). So whatever a
 * race or a failed D1 write left, usage heals within one pass over the bucket.
 *
 * Two walks, each with a cursor kept in R2 (CURSOR_KEY, rewritten only when it moved):
 * - objects: up to `objects` keys under `workspace/` a run, in key order from where the last
 *   run stopped (a whole pass takes a minute per 1,000 objects). Each topic met is compared
 *   with its rows over the key range the listing covered (so a row with no object between
 *   two listed objects is found too), and so are the cursor topic's rows after the cursor;
 * - topics: up to `topics` topics that have rows, in primary-key order; one with no object
 *   left has only rows of gone versions, which are settled (the objects walk never meets it).
 * At most `fixes` mismatches are settled a run (one R2 head each); past that, a walk stays
 * where it was, and the next run settles the rest. A run with nothing to fix costs one R2
 * list (class A), an R2 read of the cursor and one head per topic checked (class B), and two
 * D1 reads; the cursor is written (class A) only when it moved.
 */
export const CURSOR_KEY = "workspace-usage/cursor.json";
const PREFIX = "workspace/";

export interface ReconcileOptions {
  /** Objects listed a run (default 1,000, one list call; R2 lists at most 1,000). */
  objects?: number;
  /** Topics with rows checked a run for having no object (default 20, one head each; a list when that misses). */
  topics?: number;
  /** Mismatches settled a run, one head each (default 100). */
  fixes?: number;
}

export interface ReconcileReport {
  /** Objects listed. */
  objects: number;
  /** Topics checked for having no object left. */
  topics: number;
  /** Mismatches found and settled (headed, then recorded or forgotten). */
  settled: number;
  /** Rows written from what R2 holds (unless a newer version was already recorded). */
  recorded: number;
  /** Rows of versions R2 no longer holds, deleted. */
  forgotten: number;
  /** Where each walk will go on from (null: from the start). */
  cursor: Cursor;
}

type TopicId = [string, string, string];
interface Cursor {
  /** The last key the objects walk covered. */
  objects: string | null;
  /** The last topic the topics walk checked. */
  topics: TopicId | null;
}

/** A row and an object that disagree (or one without the other), as read. */
interface Mismatch {
  ref: FileRef;
  row: FileRow | null;
  seen: Version | null;
}

export async function reconcileWorkspaceUsage(env: Env, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const db = dbOf(env);
  const fixes = options.fixes ?? 100;
  const start = await readCursor(env.BUCKET);
  const report: ReconcileReport = { objects: 0, topics: 0, settled: 0, recorded: 0, forgotten: 0, cursor: { ...start } };

  const walkA = await walkObjects(env, db, start.objects, Math.min(options.objects ?? 1000, 1000), fixes);
  report.objects = walkA.listed;
  report.cursor.objects = walkA.next;
  const walkB = await walkTopics(env, db, start.topics, options.topics ?? 20, fixes - walkA.mismatches.length);
  report.topics = walkB.checked;
  report.cursor.topics = walkB.next;

  const mismatches = [...walkA.mismatches, ...walkB.mismatches];
  Object.assign(report, await settle(env, mismatches));
  if (JSON.stringify(start) !== JSON.stringify(report.cursor)) {
    await env.BUCKET.put(CURSOR_KEY, JSON.stringify(report.cursor), { httpMetadata: { contentType: "application/json" } });
  }
  return report;
}

/** The cron's step: reconciles, logs what it fixed, and never fails the rest of the cron. */
export async function workspaceUsageCron(env: Env): Promise<void> {
  try {
    const r = await reconcileWorkspaceUsage(env);
    if (r.settled > 0) log("warn", "workspace usage reconciled", { settled: r.settled, recorded: r.recorded, forgotten: r.forgotten });
  } catch (error) {
    log("warn", "workspace usage reconciliation failed", { error: error instanceof Error ? error.message : String(error) });
  }
}

async function readCursor(bucket: R2Bucket): Promise<Cursor> {
  const object = await bucket.get(CURSOR_KEY);
  if (!object) return { objects: null, topics: null };
  try {
    const c = (await object.json()) as Partial<Cursor>;
    return { objects: typeof c.objects === "string" ? c.objects : null, topics: Array.isArray(c.topics) && c.topics.length === 3 ? (c.topics as TopicId) : null };
  } catch {
    return { objects: null, topics: null }; // unreadable: start over
  }
}

const sameTopic = (a: { team: string; sid: string; tid: string }, b: { team: string; sid: string; tid: string }) => a.team === b.team && a.sid === b.sid && a.tid === b.tid;

/** One page of objects after `after`, compared with the rows of the same key range. */
async function walkObjects(env: Env, db: Db, after: string | null, limit: number, fixes: number) {
  const page = await env.BUCKET.list({ prefix: PREFIX, limit, ...(after ? { startAfter: after } : {}) });
  const listed = page.objects.flatMap((o) => {
    const ref = parseFileKey(o.key);
    return ref ? [{ ref, key: o.key, version: versionOf(o) }] : [];
  });

  // The key range this page covers, topic by topic: from the cursor (or a topic's start) to
  // the last listed key when there are more (or a topic's end).
  const ranges: Array<TopicRange & { objects: Map<string, Version> }> = [];
  const from = after ? parseFileKey(after) : null;
  for (const o of listed) {
    let range = ranges[ranges.length - 1];
    if (!range || !sameTopic(range, o.ref)) {
      range = { team: o.ref.team, sid: o.ref.sid, tid: o.ref.tid, after: null, through: null, objects: new Map() };
      ranges.push(range);
    }
    range.objects.set(o.ref.path, o.version);
  }
  const first = ranges[0];
  if (from && first && sameTopic(first, from)) first.after = from.path;
  else if (from) ranges.unshift({ team: from.team, sid: from.sid, tid: from.tid, after: from.path, through: null, objects: new Map() });
  const last = ranges[ranges.length - 1];
  const lastListed = listed[listed.length - 1];
  // Cut at the last key listed when there are more, if that key is a file of this topic (a
  // key that is not a file's ends no topic's range: the topic before it ended before it).
  if (page.truncated && last && lastListed && lastListed.key === page.objects[page.objects.length - 1]?.key) last.through = lastListed.ref.path;

  const rows = await rowsInRanges(db, ranges, 2 * limit + 1000);
  const byKey = new Map(rows.map((r) => [fileKey(r), r]));
  const found: Mismatch[] = [];
  for (const range of ranges) {
    for (const [path, seen] of range.objects) {
      const ref = { team: range.team, sid: range.sid, tid: range.tid, path };
      const key = fileKey(ref);
      const row = byKey.get(key) ?? null;
      byKey.delete(key);
      if (!sameVersion(row, seen)) found.push({ ref, row, seen });
    }
  }
  for (const row of byKey.values()) found.push({ ref: row, row, seen: null }); // rows with no object

  const mismatches = found.slice(0, Math.max(0, fixes));
  // Out of fixes: the same page again next run, where the ones settled now no longer differ.
  const next = mismatches.length < found.length ? after : page.truncated ? (page.objects[page.objects.length - 1]?.key ?? null) : null;
  return { listed: page.objects.length, mismatches, next };
}

/**
 * Topics with rows after `after`: one whose first row's object is gone and that has no object
 * left (an R2 list of one key) has only rows of gone versions. A topic with objects is the
 * objects walk's; its first row's object is there unless something drifted, so this costs
 * one R2 head a topic, and a list only then.
 */
async function walkTopics(env: Env, db: Db, after: TopicId | null, limit: number, fixes: number) {
  const mismatches: Mismatch[] = [];
  const topics = await topicsWithRows(db, after, limit);
  const heads = await Promise.all(topics.map((t) => env.BUCKET.head(fileKey({ ...t, path: t.first }))));
  const empty: TopicRange[] = [];
  for (const [i, t] of topics.entries()) {
    if (heads[i]) continue;
    const page = await env.BUCKET.list({ prefix: workspaceKey(t.team, t.sid, t.tid), limit: 1 });
    if (page.objects.length === 0) empty.push({ team: t.team, sid: t.sid, tid: t.tid, after: null, through: null });
  }
  const lastTopic = topics[topics.length - 1];
  let next: TopicId | null = topics.length < limit || !lastTopic ? null : [lastTopic.team, lastTopic.sid, lastTopic.tid];
  if (empty.length > 0) {
    const rows = await rowsInRanges(db, empty, Math.max(0, fixes) + 1);
    for (const row of rows.slice(0, Math.max(0, fixes))) mismatches.push({ ref: row, row, seen: null });
    if (rows.length > fixes) next = after; // out of fixes: the same topics again next run
  }
  return { checked: topics.length, mismatches, next };
}

/**
 * Heads each mismatch's key, then, in one D1 batch: forgets the versions the head showed gone
 * (the row was read, and the object listed, before it), and records what R2 holds (unless a
 * newer version is recorded by then). A row that differs from what R2 holds is forgotten
 * through its own upload time first, so even a row dated after the object is replaced.
 */
async function settle(env: Env, mismatches: Mismatch[]) {
  const record: FileRow[] = [];
  const forget: Array<FileRef & { through: string }> = [];
  for (let i = 0; i < mismatches.length; i += 10) {
    const chunk = mismatches.slice(i, i + 10);
    const heads = await Promise.all(chunk.map((m) => env.BUCKET.head(fileKey(m.ref))));
    chunk.forEach((m, j) => {
      const now = heads[j];
      const version = now ? versionOf(now) : null;
      if (sameVersion(m.row, version)) return; // settled meanwhile
      const ref = { team: m.ref.team, sid: m.ref.sid, tid: m.ref.tid, path: m.ref.path };
      if (m.row) forget.push({ ...ref, through: m.seen && !version && m.seen.uploaded > m.row.uploaded ? m.seen.uploaded : m.row.uploaded });
      if (version) record.push({ ...ref, ...version });
    });
  }
  const statements = [...(forget.length > 0 ? [forgetVersions(env.DB, forget)] : []), ...(record.length > 0 ? [recordVersions(env.DB, record)] : [])];
  if (statements.length > 0) await env.DB.batch(statements);
  return { settled: mismatches.length, recorded: record.length, forgotten: forget.length };
}
