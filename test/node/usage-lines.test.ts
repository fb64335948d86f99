import { describe, expect, it } from "vitest";
import { emptyUsage, MAX_PROTOCOL_LINE, UsageLines } from "../../cli/agent-output";

// The agent's stdout cut into lines for its usage reports, chunk by chunk as a pipe delivers it.

const CHUNK = 64 * 1024; // what a pipe hands over at most

function feed(lines: UsageLines, text: string): void {
  for (let i = 0; i < text.length; i += CHUNK) lines.push(text.slice(i, i + CHUNK));
}

describe("the runner's reading of usage lines", () => {
  it("reads a line split across chunks, and a last line with no newline", () => {
    const usage = emptyUsage();
    const lines = new UsageLines(usage);
    for (const chunk of ['chat\n{"tur', 'ns": 3}\n{"tool": "bash"}\n{"cost', '_usd": 0.5}']) lines.push(chunk);
    lines.end();
    expect(usage).toMatchObject({ turns: 3, cost_usd: 0.5 });
    expect(usage.tools.get("bash")?.calls).toBe(1);
  });

  it("one 40 MB line is read chunk by chunk (only new chunks searched), and the reports after it still count", () => {
    // Searching the whole pending line again on each chunk took minutes for this (past the
    // test's timeout); how fast it is belongs in bench/, not here.
    const usage = emptyUsage();
    const lines = new UsageLines(usage);
    feed(lines, "x".repeat(40 * 1024 * 1024));
    feed(lines, '\n{"turns": 4}\n');
    lines.end();
    expect(usage.turns).toBe(4);
  });

  it("a line past MAX_PROTOCOL_LINE is chat, even when it is JSON", () => {
    const usage = emptyUsage();
    const lines = new UsageLines(usage);
    feed(lines, `${JSON.stringify({ turns: 9, pad: "p".repeat(MAX_PROTOCOL_LINE) })}\n{"cost_usd": 1}\n`);
    lines.end();
    expect(usage).toMatchObject({ turns: 0, cost_usd: 1 });
  });
});
