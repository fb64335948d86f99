import { eq } from "drizzle-orm";
import { dbOf } from "../db/client";
import { existingSessionIds } from "../db/index-rows";
import { teams } from "../db/schema";
import { eventSchema } from "../domain/events";
import { SENTINEL_PREFIX, parseSentinelKey, rejectedKey } from "../domain/sentinel";
import { decryptSecret } from "../lib/crypto";
import { log } from "../lib/log";
import { verifyPayload } from "../lib/standard-webhooks";
import { applyCallbackMessage } from "../queue/consumer";

/** At most this many sentinels a sweep, so one cron run stays well inside its time limit. */
export const SWEEP_LIMIT = 500;

export interface SweepReport {
  applied: number;
  rejected: number;
  skipped: number;
}

class Refused extends Error {}

/**
 * Applies every pending sentinel through the same path as a callback (the hubs dedupe by
 * event id, so an event that also arrived over HTTPS, or a sentinel two sweeps see at once,
 * is applied once), and deletes each only after it was applied. A malformed sentinel moves
 * to `callback-sentinels/rejected/` with its reason.
 */
export async function sweepSentinels(env: Env, limit = SWEEP_LIMIT): Promise<SweepReport> {
  const report: SweepReport = { applied: 0, rejected: 0, skipped: 0 };
  const secrets = new Map<string, string | null>();
  let cursor: string | undefined;
  let seen = 0;
  do {
    const page = await env.BUCKET.list({ prefix: SENTINEL_PREFIX, cursor, limit: Math.min(1000, limit - seen), include: ["customMetadata"] });
    for (const listed of page.objects) {
      seen += 1;
      const object = await env.BUCKET.get(listed.key);
      if (!object) {
        report.skipped += 1; // another sweep took it
        continue;
      }
      const raw = await object.text();
      try {
        const event = await validate(env, listed.key, raw, object.customMetadata ?? {}, secrets);
        await applyCallbackMessage(env, { kind: "callbacks", team_id: event.team, request_id: `sentinel:${listed.key}`, events: [event.event] });
        await env.BUCKET.delete(listed.key);
        report.applied += 1;
      } catch (error) {
        if (!(error instanceof Refused)) {
          // A platform failure (D1, a hub): leave the sentinel for the next sweep.
          log("warn", "sentinel not applied; will retry", { key: listed.key, error: error instanceof Error ? error.message : String(error) });
          report.skipped += 1;
          continue;
        }
        await env.BUCKET.put(rejectedKey(listed.key), raw, { customMetadata: { ...(object.customMetadata ?? {}), reason: error.message, rejected_at: new Date().toISOString() } });
        await env.BUCKET.delete(listed.key);
        log("warn", "sentinel rejected", { key: listed.key, reason: error.message });
        report.rejected += 1;
      }
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor && seen < limit);
  return report;
}

async function validate(env: Env, key: string, raw: string, meta: Record<string, string>, secrets: Map<string, string | null>) {
  const parsedKey = parseSentinelKey(key);
  if (!parsedKey) throw new Refused("the key is not callback-sentinels/alpha/{team}/{session}/{topic}/{event}.json");
  const team = parsedKey.team_id;
  if (!secrets.has(team)) {
    const row = await dbOf(env).select({ signingSecret: teams.signingSecret }).from(teams).where(eq(teams.id, team)).get();
    if (!row) throw new Refused(`no team ${team}`);
    secrets.set(team, row.signingSecret ? await decryptSecret(env.SECRETS_KEY, row.signingSecret, `${team}:signing_secret`) : null);
  }
  const secret = secrets.get(team);
  if (secret) {
    // No time window: a sentinel is swept late by design. The event id still makes it once-only.
    const verdict = await verifyPayload(secret, { id: meta["webhook-id"] ?? null, timestamp: meta["webhook-timestamp"] ?? null, signature: meta["webhook-signature"] ?? null }, raw, 0, null);
    if (!verdict.ok) throw new Refused(`signature: ${verdict.reason}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new Refused("the body is not JSON");
  }
  const parsed = eventSchema.safeParse(body);
  if (!parsed.success) throw new Refused(`invalid event: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const event = parsed.data;
  if (event.id !== parsedKey.event_id || event.session_id !== parsedKey.session_id || (event.topic_id ?? null) !== parsedKey.topic_id) {
    throw new Refused("the event's id, session_id or topic_id does not match its key");
  }
  const known = await existingSessionIds(dbOf(env), team, [event.session_id]);
  if (!known.has(event.session_id)) throw new Refused(`no session ${event.session_id} in team ${team}`);
  return { team, event };
}
