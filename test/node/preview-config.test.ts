import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error plain ESM script without types
import { previewConfig, previewNames } from "../../scripts/preview-config.mjs";

describe("pull request previews", () => {
  it("give each pull request its own Worker, D1, bucket and queues, and a config wrangler accepts", () => {
    const names = previewNames(42);
    const toml = previewConfig(readFileSync("wrangler.toml", "utf8"), names, "11111111-2222-3333-4444-555555555555");
    expect(toml).toContain('name = "switchboard-pr-42"');
    expect(toml).toContain('database_name = "switchboard-pr-42"');
    expect(toml).toContain('bucket_name = "switchboard-pr-42"');
    expect(toml).toContain('dead_letter_queue = "switchboard-pr-42-callbacks-dlq"');
    expect(toml).not.toMatch(/"switchboard"|"switchboard-callbacks"|env\.preview/);
    // wrangler itself must accept it: bundle it as a deploy would, without deploying.
    const dir = mkdtempSync(join(tmpdir(), "preview-"));
    const config = join(process.cwd(), `wrangler.pr-test-${process.pid}.toml`);
    try {
      writeFileSync(config, toml);
      const out = execFileSync("npx", ["wrangler", "deploy", "--dry-run", "-c", config, "--outdir", dir], { encoding: "utf8", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } });
      expect(out).toContain("switchboard-pr-42-callbacks");
    } finally {
      rmSync(config, { force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
