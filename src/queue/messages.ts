import type { AgentEvent } from "../domain/events";

/**
 * One callback request becomes one queue message, so its events are applied in the order
 * given. Over the message limit (128 KB) the events go to R2 and the message points there.
 */
export type CallbackMessage = { kind: "callbacks"; team_id: string; request_id: string; events: AgentEvent[] } | { kind: "callbacks"; team_id: string; request_id: string; r2_key: string };

/** Leaves room under the 128 KB limit for the envelope and JSON escaping. */
export const INLINE_LIMIT_BYTES = 120 * 1024;

export function oversizeKey(teamId: string, requestId: string): string {
  return `callback-requests/${teamId}/${requestId}.json`;
}
