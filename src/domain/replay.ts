/**
 * What a stream sends first, given the client's Last-Event-ID and the hub's kept history
 * (`oldest`..`current`, both 0 when nothing was ever logged).
 * - no id: a snapshot, then live events;
 * - an id within history: every later event, then live (no gap, no duplicate);
 * - an id older than the kept history, beyond the current sequence, or not a number: a
 *   reset, then a fresh snapshot.
 */
export type ReplayPlan =
  | { kind: "snapshot" }
  | { kind: "replay"; after: number }
  | { kind: "reset"; reason: "expired" | "ahead" | "invalid" };

export function planReplay(lastEventId: number | "invalid" | null, oldest: number, current: number): ReplayPlan {
  if (lastEventId === null) return { kind: "snapshot" };
  if (lastEventId === "invalid") return { kind: "reset", reason: "invalid" };
  if (lastEventId > current) return { kind: "reset", reason: "ahead" };
  if (lastEventId === current) return { kind: "replay", after: current };
  // Events after lastEventId start at lastEventId + 1, which must still be kept.
  if (lastEventId + 1 < oldest) return { kind: "reset", reason: "expired" };
  return { kind: "replay", after: lastEventId };
}

/** Sequence numbers at or below this are trimmed once the log exceeds `history` events. */
export function trimBelow(current: number, history: number): number {
  return Math.max(0, current - history);
}
