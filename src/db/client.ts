import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

/** A drizzle client for this request. Never cache it at module scope (I/O is per request). */
export function dbOf(env: { DB: D1Database }) {
  return drizzle(env.DB, { schema });
}
export type Db = ReturnType<typeof dbOf>;
