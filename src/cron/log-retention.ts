import { dbOf } from "../db/client";
import { deleteLogBatchesThrough, oldLogBatches } from "../db/logs";
import { LOG_RETENTION_DAYS } from "../domain/logs";

/** R2 deletes up to 1,000 keys in one call. */
const CHUNK = 1000;
/** Rounds per cron run: up to 5,000 batches a minute, so a backlog drains without one run taking long. */
const ROUNDS = 5;

/**
 * Deletes the worker log batches older than LOG_RETENTION_DAYS: each chunk's R2 objects
 * first, then its index rows, so a failure leaves rows whose objects are gone (reads skip
 * them, the next run deletes them) and never objects no row points to.
 */
export async function expireLogs(env: Env, now = new Date()): Promise<number> {
  const db = dbOf(env);
  const before = new Date(now.getTime() - LOG_RETENTION_DAYS * 86_400_000).toISOString();
  let deleted = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const old = await oldLogBatches(db, before, CHUNK);
    const last = old[old.length - 1];
    if (!last) break;
    await env.BUCKET.delete(old.map((b) => b.r2Key));
    await deleteLogBatchesThrough(db, before, last);
    deleted += old.length;
    if (old.length < CHUNK) break;
  }
  return deleted;
}
