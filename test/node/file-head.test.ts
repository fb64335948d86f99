import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fitJson } from "../../cli/worker/agent-result";
import { readFileHead } from "../../cli/worker/file-head";

const dir = mkdtempSync(join(tmpdir(), "switchboard-file-head-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("readFileHead", () => {
  it("reads a file within the limit whole", () => {
    writeFileSync(join(dir, "small.md"), "é🚀 done\n");
    expect(readFileHead(join(dir, "small.md"), 100)).toBe("é🚀 done\n");
  });

  it("reads only the start of a huge file, cut on a character boundary and marked", () => {
    const file = join(dir, "huge.md");
    writeFileSync(file, "🚀".repeat(40_000)); // 80,000 UTF-16 units, 160,000 bytes
    truncateSync(file, 700 * 1024 * 1024); // sparse: more than one JavaScript string can hold
    const text = readFileHead(file, 1000);
    expect(text.length).toBeLessThanOrEqual(1000);
    expect(text).toMatch(/^(🚀)+\n\n\[… cut at 1,000 characters: the file is 734,003,200 bytes\]$/u);
  });

  it("refuses what is not a regular file, without waiting on a FIFO", () => {
    mkdirSync(join(dir, "a-dir.md"));
    expect(() => readFileHead(join(dir, "a-dir.md"), 100)).toThrow(/is not a regular file/);
    const fifo = join(dir, "fifo.md");
    if (spawnSync("mkfifo", [fifo]).status === 0) expect(() => readFileHead(fifo, 100)).toThrow(/is not a regular file/);
    expect(() => readFileHead(join(dir, "missing.md"), 100)).toThrow(/ENOENT/);
  });
});

describe("fitJson", () => {
  it("cuts text whose JSON would be over the body limit, and leaves the rest alone", () => {
    expect(fitJson("plain", 100)).toBe("plain");
    const nuls = fitJson("\0".repeat(200_000), 900 * 1024);
    expect(Buffer.byteLength(JSON.stringify(nuls))).toBeLessThanOrEqual(900 * 1024);
    expect(Buffer.byteLength(JSON.stringify(nuls))).toBeGreaterThan(900 * 1024 - 100);
    expect(nuls).toMatch(/\n\n\[… \d+ characters cut to fit the API's body limit\]$/);
  });
});
