/**
 * V8 flags for `wrangler dev`'s runtime (workerd), passed through miniflare's
 * MINIFLARE_WORKERD_V8_FLAGS; a value set in the environment wins (an empty one: none).
 * `--optimize-for-size` makes V8 grow the heap less before collecting, so each collection has
 * fewer dead requests to finalize: the runtime's stalls under load, which set p99, are shorter
 * (README, Benchmarks: measured by hand, three runs each way). Local only: Cloudflare runs
 * its own runtime in production.
 */
export const DEFAULT_RUNTIME_V8_FLAGS = "--optimize-for-size";

export function runtimeV8Flags(env = process.env) {
  return env.MINIFLARE_WORKERD_V8_FLAGS ?? DEFAULT_RUNTIME_V8_FLAGS;
}
