import { lt } from "drizzle-orm";
import { dbOf } from "../db/client";
import { webhookIds } from "../db/schema";
import { TOLERANCE_SECONDS } from "../lib/standard-webhooks";
import { log } from "../lib/log";
import { sweepSentinels } from "./sentinels";

/** The every-minute cron: sweep callback sentinels; forget webhook ids past the signature window. */
export async function handleScheduled(_controller: ScheduledController, env: Env, _ctx?: ExecutionContext): Promise<void> {
  const report = await sweepSentinels(env);
  if (report.applied + report.rejected + report.skipped > 0) log("info", "sentinel sweep", { ...report });
  await dbOf(env)
    .delete(webhookIds)
    .where(lt(webhookIds.seenAt, Date.now() - 2 * TOLERANCE_SECONDS * 1000));
}
