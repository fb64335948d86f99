import { drizzle } from "drizzle-orm/d1";

/**
 * A drizzle client for this request. Never cache it at module scope (I/O is per request).
 * No `schema` is passed: the relational query API is not used, and building its config on
 * every request showed up in the callback path's CPU profile.
 */
export function dbOf(env: { DB: D1Database }) {
  return drizzle(env.DB);
}
export type Db = ReturnType<typeof dbOf>;
