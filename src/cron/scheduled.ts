import { lt } from "drizzle-orm";
import { dbOf } from "../db/client";
import { webhookIds } from "../db/schema";
import { TOLERANCE_SECONDS } from "../lib/standard-webhooks";

/** The every-minute cron: forget webhook ids older than the signature window (they could not be replayed anyway). */
export async function handleScheduled(_controller: ScheduledController, env: Env): Promise<void> {
  await dbOf(env)
    .delete(webhookIds)
    .where(lt(webhookIds.seenAt, Date.now() - 2 * TOLERANCE_SECONDS * 1000));
}
