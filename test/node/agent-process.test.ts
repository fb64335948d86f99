import { describe, expect, it } from "vitest";
import { startAgent } from "../../cli/worker/agent-process";

describe("the worker's agent process", () => {
  it("keeps multibyte characters whole when they straddle reads, in lines, chunks and the kept output", async () => {
    // "€" is E2 82 AC: written a byte at a time, with pauses, so each byte is its own read.
    const script = `const b = Buffer.from("h€llo 🚀\\n", "utf8"); let i = 0; const t = setInterval(() => { if (i >= b.length) { clearInterval(t); return; } process.stdout.write(b.subarray(i, i + 1)); i++; }, 5);`;
    const lines: string[] = [];
    let chunks = "";
    const run = startAgent({ command: [process.execPath, "-e", script], cwd: process.cwd(), env: process.env, input: "", onLine: (_s, line) => lines.push(line), onChunk: (_s, text) => (chunks += text) });
    expect((await run.exited).code).toBe(0);
    expect(lines).toEqual(["h€llo 🚀"]);
    expect(chunks).toBe("h€llo 🚀\n");
    expect(run.stdout()).toBe("h€llo 🚀\n");
  });
});
