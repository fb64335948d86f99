import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig(async () => {
  const migrations = await readD1Migrations(new URL("./migrations", import.meta.url).pathname);
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            ADMIN_TOKEN: "test-admin-token",
            SECRETS_KEY: "test-secrets-key-0123456789abcdef",
            TEST_MIGRATIONS: migrations,
            // Small enough for tests to reach the history bound and see heartbeats.
            STREAM_HISTORY: "20",
            HEARTBEAT_MS: "300",
            // Open streams ask this often whether their key still exists (60 s by default).
            STREAM_KEY_CHECK_MS: "200",
            // Notification retries a second apart, so tests see several tries.
            NOTIFY_MAX_BACKOFF_SECONDS: "1",
          },
        },
      }),
    ],
    test: {
      include: ["test/**/*.test.ts"],
      exclude: ["test/node/**"],
      setupFiles: ["./test/apply-migrations.ts"],
      // A real HTTP receiver for outgoing notifications, in Node, on 127.0.0.1.
      globalSetup: ["./test/receiver-setup.ts"],
      testTimeout: 20_000,
      // The Worker logs a JSON line per request; show them only for failing tests.
      silent: "passed-only",
    },
  };
});
