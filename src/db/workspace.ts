import { sql } from "drizzle-orm";
import { workspaceKey } from "../domain/workspace-path";
import type { Db } from "./client";

/**
 * Storage accounting for the workspace: one `workspace_files` row per R2 object under
 * `workspace/{team}/{session}/{topic}/`, summed by GET /v1/usage.
 *
 * R2 and D1 cannot change together, so a row is never written from what a request *meant*
 * to do, only from what R2 was *seen* to hold, and only in ways that stay true whatever
 * runs in between:
 *
 * - a version seen in R2 (a head or a listing) is recorded unless the row already holds
 *   one uploaded later (`recordVersions`: an upsert conditional on R2's `uploaded` time),
 *   so an older writer never overwrites a newer state;
 * - when R2 holds nothing at a key, every version of it uploaded at or before one known to
 *   precede that observation is gone for good (an R2 version never comes back), so a row of
 *   such a version is deleted (`forgetVersions`), and a row written meanwhile for a newer
 *   version is kept.
 *
 * This relies on R2 giving the writes of one key increasing `uploaded` times (R2 orders the
 * writes of a key; its times are milliseconds, compared as ISO text of one width).
 *
 * After its R2 put or delete, a request heads the key and writes the row from that
 * (`settleFile`): one more R2 read and one D1 write. What this cannot close is a version
 * seen just before another request deletes it, whose row lands after that request removed
 * the row (or a D1 failure after the R2 write): the reconciliation in
 * src/cron/workspace-usage.ts finds such rows and objects and settles them the same way.
 */

/** A workspace file: its topic and its path within the topic's workspace. */
export interface FileRef {
  team: string;
  sid: string;
  tid: string;
  path: string;
}

/** What D1 keeps of an R2 version: its size, its quoted etag (`httpEtag`), when R2 stored it. */
export interface Version {
  size: number;
  etag: string;
  uploaded: string;
}

export interface FileRow extends FileRef, Version {}

export function fileKey(ref: FileRef): string {
  return workspaceKey(ref.team, ref.sid, ref.tid, ref.path);
}

export function versionOf(o: R2Object): Version {
  return { size: o.size, etag: o.httpEtag, uploaded: o.uploaded.toISOString() };
}

export function sameVersion(a: Version | null | undefined, b: Version | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.size === b.size && a.etag === b.etag && a.uploaded === b.uploaded;
}

/**
 * The file a key names, or null when it is not `workspace/{team}/{session}/{topic}/{path}`
 * (ids hold no `/`; the path may).
 */
export function parseFileKey(key: string): FileRef | null {
  const m = /^workspace\/([^/]+)\/([^/]+)\/([^/]+)\/(.+)$/s.exec(key);
  if (!m) return null;
  return { team: m[1] as string, sid: m[2] as string, tid: m[3] as string, path: m[4] as string };
}

// Several rows in one statement: D1 binds at most 100 parameters, so the rows go in one JSON
// parameter, taken apart with json_each (CROSS JOIN keeps the JSON as the outer loop, so
// each element is one primary-key lookup or range of workspace_files).

/** Records each version unless its row holds one uploaded later. One statement (run it, or batch it). */
export function recordVersions(d1: D1Database, rows: FileRow[]): D1PreparedStatement {
  const json = JSON.stringify(rows.map((r) => [r.team, r.sid, r.tid, r.path, r.size, r.etag, r.uploaded]));
  return d1
    .prepare(`
    INSERT INTO workspace_files (team_id, session_id, topic_id, path, size, etag, uploaded_at)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'),
           json_extract(value, '$[4]'), json_extract(value, '$[5]'), json_extract(value, '$[6]')
    FROM json_each(?1) WHERE true
    ON CONFLICT (team_id, session_id, topic_id, path) DO UPDATE
      SET size = excluded.size, etag = excluded.etag, uploaded_at = excluded.uploaded_at
      WHERE excluded.uploaded_at >= workspace_files.uploaded_at`)
    .bind(json);
}

/** Deletes each file's row if its version was uploaded at or before `through` (R2 showed those gone). One statement. */
export function forgetVersions(d1: D1Database, gone: Array<FileRef & { through: string }>): D1PreparedStatement {
  const json = JSON.stringify(gone.map((g) => [g.team, g.sid, g.tid, g.path, g.through]));
  return d1
    .prepare(`
    DELETE FROM workspace_files WHERE rowid IN (
      SELECT w.rowid FROM json_each(?1) j CROSS JOIN workspace_files w
      WHERE w.team_id = json_extract(j.value, '$[0]') AND w.session_id = json_extract(j.value, '$[1]')
        AND w.topic_id = json_extract(j.value, '$[2]') AND w.path = json_extract(j.value, '$[3]')
        AND w.uploaded_at <= json_extract(j.value, '$[4]'))`)
    .bind(json);
}

/** A path range of one topic: paths after `after` (all when null) and up to `through` (all when null). */
export interface TopicRange {
  team: string;
  sid: string;
  tid: string;
  after: string | null;
  through: string | null;
}

type RawRow = { team_id: string; session_id: string; topic_id: string; path: string; size: number; etag: string; uploaded_at: string };
const fromRaw = (r: RawRow): FileRow => ({ team: r.team_id, sid: r.session_id, tid: r.topic_id, path: r.path, size: r.size, etag: r.etag, uploaded: r.uploaded_at });

/** The rows in each range, at most `limit` in all. One statement. */
export async function rowsInRanges(db: Db, ranges: TopicRange[], limit: number): Promise<FileRow[]> {
  if (ranges.length === 0) return [];
  const json = JSON.stringify(ranges.map((r) => [r.team, r.sid, r.tid, r.after ?? "", r.through]));
  const rows = await db.all<RawRow>(sql`
    SELECT w.team_id, w.session_id, w.topic_id, w.path, w.size, w.etag, w.uploaded_at
    FROM json_each(${json}) j CROSS JOIN workspace_files w
    WHERE w.team_id = json_extract(j.value, '$[0]') AND w.session_id = json_extract(j.value, '$[1]')
      AND w.topic_id = json_extract(j.value, '$[2]') AND w.path > json_extract(j.value, '$[3]')
      AND (json_extract(j.value, '$[4]') IS NULL OR w.path <= json_extract(j.value, '$[4]'))
    LIMIT ${limit}`);
  return rows.map(fromRaw);
}

/** Topics with rows, in primary-key order, after `after` (from the first when null), each with its first path. */
export async function topicsWithRows(db: Db, after: [string, string, string] | null, limit: number): Promise<Array<{ team: string; sid: string; tid: string; first: string }>> {
  const [team, sid, tid] = after ?? ["", "", ""];
  const rows = await db.all<{ team_id: string; session_id: string; topic_id: string; first: string }>(sql`
    SELECT team_id, session_id, topic_id, min(path) AS first FROM workspace_files
    WHERE (team_id, session_id, topic_id) > (${team}, ${sid}, ${tid})
    GROUP BY team_id, session_id, topic_id ORDER BY team_id, session_id, topic_id LIMIT ${limit}`);
  return rows.map((r) => ({ team: r.team_id, sid: r.session_id, tid: r.topic_id, first: r.first }));
}

/**
 * After a request changed a file in R2: heads the key and writes its row from what R2 holds
 * now. `goneThrough` is the upload time of a version this request saw before the head (the
 * one it put, or the one that was there before its delete): when R2 holds nothing, that
 * version and older ones are gone. Returns what R2 holds.
 */
export async function settleFile(env: { BUCKET: R2Bucket; DB: D1Database }, ref: FileRef, goneThrough: string | null): Promise<R2Object | null> {
  const now = await env.BUCKET.head(fileKey(ref));
  if (now) await recordVersions(env.DB, [{ ...ref, ...versionOf(now) }]).run();
  else if (goneThrough) await forgetVersions(env.DB, [{ ...ref, through: goneThrough }]).run();
  return now;
}
