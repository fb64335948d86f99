import { describe, expect, it } from "vitest";
import { renderSummary } from "../../cli/summary-table";

describe("the timing summary", () => {
  it("totals turns, cost and duration, and the budgets of the steps that ran (a skipped step's is not counted)", () => {
    const out = renderSummary([
      { step: "design", status: "completed", turns: 4, max_turns: 15, cost_usd: 0.1, duration_ms: 1500 },
      { step: "prep", status: "failed", turns: 2, max_turns: 40, cost_usd: 0.05, duration_ms: 500 },
      { step: "explore", status: "skipped", turns: 0, max_turns: 50, cost_usd: 0, duration_ms: 0 },
    ]);
    expect(out).toMatch(/│ explore\s+│ skipped\s+│ 0\/50/);
    expect(out).toMatch(/│ total\s+│\s+│ 6\/55\s+│ \$0\.1500 │ 2\.0s/);
  });

  it("says below the table why each step that failed did (not for an interruption, which its status says)", () => {
    const out = renderSummary([
      { step: "design", status: "failed", turns: 0, max_turns: 15, cost_usd: 0, duration_ms: 5, detail: "could not start: spawn /nonexistent/cmd ENOENT" },
      { step: "prep", status: "interrupted", turns: 0, max_turns: 40, cost_usd: 0, duration_ms: 5, detail: "interrupted" },
    ]);
    expect(out.split("\n").slice(-1)).toEqual(["design failed: could not start: spawn /nonexistent/cmd ENOENT"]);
    expect(out).not.toMatch(/prep interrupted:/);
  });
});
