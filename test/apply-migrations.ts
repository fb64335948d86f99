import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// The same files wrangler applies (migrations/, written by drizzle-kit).
await applyD1Migrations(env.DB, (env as unknown as { TEST_MIGRATIONS: Parameters<typeof applyD1Migrations>[1] }).TEST_MIGRATIONS);
