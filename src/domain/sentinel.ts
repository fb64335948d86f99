/**
 * Sentinels: events an agent could not deliver over HTTPS, written to R2 (through its S3 API)
 * at `callback-sentinels/alpha/{team_id}/{session_id}/{topic_id}/{event_id}.json`. The team
 * comes first because session ids are unique only within a team. A session-level event uses
 * `-` as its topic segment.
 */
export const SENTINEL_PREFIX = "callback-sentinels/alpha/";
export const REJECTED_PREFIX = "callback-sentinels/rejected/";
export const SESSION_LEVEL_TOPIC = "-";

export interface SentinelKey {
  team_id: string;
  session_id: string;
  topic_id: string | null;
  event_id: string;
}

/** Parses a sentinel key, or null when it is not of the documented shape. */
export function parseSentinelKey(key: string): SentinelKey | null {
  if (!key.startsWith(SENTINEL_PREFIX) || !key.endsWith(".json")) return null;
  const parts = key.slice(SENTINEL_PREFIX.length, -".json".length).split("/");
  if (parts.length !== 4 || parts.some((p) => p.length === 0)) return null;
  const [team_id, session_id, topic, event_id] = parts as [string, string, string, string];
  let decoded: string;
  try {
    decoded = decodeURIComponent(event_id);
  } catch {
    return null;
  }
  return { team_id, session_id, topic_id: topic === SESSION_LEVEL_TOPIC ? null : topic, event_id: decoded };
}

export function sentinelKey(k: SentinelKey): string {
  return `${SENTINEL_PREFIX}${k.team_id}/${k.session_id}/${k.topic_id ?? SESSION_LEVEL_TOPIC}/${encodeURIComponent(k.event_id)}.json`;
}

/** Where a sentinel that cannot be applied is kept, with its reason: never lost, never retried. */
export function rejectedKey(key: string): string {
  return REJECTED_PREFIX + key.slice("callback-sentinels/".length);
}
