import { defineConfig } from "vitest/config";

// Tests that run in Node rather than workerd: scripts, the CLI (STYLE.md: their own project).
export default defineConfig({
  test: { include: ["test/node/**/*.test.ts"], testTimeout: 60_000 },
});
