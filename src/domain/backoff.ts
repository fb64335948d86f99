/**
 * Exponential backoff with full jitter, in whole seconds (Queues take `delaySeconds`):
 * attempt 1 → up to 2 × `baseSeconds`, 2 → 4 ×, … capped at `maxSeconds`.
 */
export function backoffSeconds(attempt: number, random: () => number = Math.random, maxSeconds = 300, baseSeconds = 1): number {
  const ceiling = Math.min(maxSeconds, baseSeconds * 2 ** Math.max(1, attempt));
  return Math.max(1, Math.ceil(random() * ceiling));
}
