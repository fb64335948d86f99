/**
 * How an agent reports what it used, documented in the README ("Agent protocol"):
 * - JSON lines on stdout: `{"turns": 7}` and `{"cost_usd": 0.42}` are running totals (the
 *   latest wins); `{"tool": "bash", "duration_ms": 120, "error": false}` is one tool call.
 *   One line may carry several keys. Other lines are the chat log, kept as they are.
 * - or a summary file at `$SWITCHBOARD_SUMMARY_FILE`, written before exit:
 *   `{"turns": 7, "cost_usd": 0.42, "tools": [{"name", "calls", "duration_ms", "errors"}]}`;
 *   its figures replace what the lines said.
 */
export interface ToolTotals {
  name: string;
  calls: number;
  duration_ms: number;
  errors: number;
}

export interface Usage {
  turns: number;
  cost_usd: number;
  tools: Map<string, ToolTotals>;
}

export function emptyUsage(): Usage {
  return { turns: 0, cost_usd: 0, tools: new Map() };
}

/** Reads one stdout line; returns true when it was a protocol line. */
export function readUsageLine(usage: Usage, line: string): boolean {
  const trimmed = line.trim();
  if (!trimmed.startsWith("{") || !trimmed.endsWith("}")) return false;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    return false;
  }
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  let used = false;
  if (typeof v.turns === "number" && v.turns >= 0) {
    usage.turns = Math.floor(v.turns);
    used = true;
  }
  if (typeof v.cost_usd === "number" && v.cost_usd >= 0) {
    usage.cost_usd = v.cost_usd;
    used = true;
  }
  if (typeof v.tool === "string" && v.tool.length > 0) {
    const t = usage.tools.get(v.tool) ?? { name: v.tool, calls: 0, duration_ms: 0, errors: 0 };
    t.calls += 1;
    t.duration_ms += typeof v.duration_ms === "number" && v.duration_ms >= 0 ? v.duration_ms : 0;
    t.errors += v.error === true ? 1 : 0;
    usage.tools.set(v.tool, t);
    used = true;
  }
  return used;
}

/** Applies a summary file's contents; malformed fields are ignored, not fatal. */
export function applySummary(usage: Usage, summary: unknown): void {
  if (typeof summary !== "object" || summary === null) return;
  const s = summary as Record<string, unknown>;
  if (typeof s.turns === "number" && s.turns >= 0) usage.turns = Math.floor(s.turns);
  if (typeof s.cost_usd === "number" && s.cost_usd >= 0) usage.cost_usd = s.cost_usd;
  if (Array.isArray(s.tools)) {
    usage.tools = new Map();
    for (const t of s.tools) {
      if (typeof t !== "object" || t === null || typeof (t as ToolTotals).name !== "string") continue;
      const x = t as Partial<ToolTotals> & { name: string };
      usage.tools.set(x.name, { name: x.name, calls: num(x.calls), duration_ms: num(x.duration_ms), errors: num(x.errors) });
    }
  }
}

function num(v: unknown): number {
  return typeof v === "number" && v >= 0 ? v : 0;
}
