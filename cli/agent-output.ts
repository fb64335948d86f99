import { MAX_TOOL_NAME } from "../src/domain/events";
import { MAX_TOOLS_PER_STEP } from "../src/domain/topic";
import { LineCutter } from "./line-cutter";
import { wholeChars } from "./output";

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
  const turns = count(v.turns);
  if (turns !== undefined) {
    usage.turns = turns;
    used = true;
  }
  const cost = amount(v.cost_usd);
  if (cost !== undefined) {
    usage.cost_usd = cost;
    used = true;
  }
  if (typeof v.tool === "string" && v.tool.length > 0) {
    const name = toolName(v.tool);
    const t = usage.tools.get(name);
    // The server keeps at most MAX_TOOLS_PER_STEP names a step: a new one past them is not counted.
    if (t || usage.tools.size < MAX_TOOLS_PER_STEP) {
      const tool = t ?? { name, calls: 0, duration_ms: 0, errors: 0 };
      tool.calls += 1;
      tool.duration_ms += amount(v.duration_ms) ?? 0;
      tool.errors += v.error === true ? 1 : 0;
      usage.tools.set(name, tool);
    }
    used = true;
  }
  return used;
}

/** The longest line read as a report: a usage line is far shorter; a longer one is chat. */
export const MAX_PROTOCOL_LINE = 64 * 1024;

/**
 * Cuts stdout into lines for `readUsageLine` as it arrives (in linear time: a 20 MB line once
 * cost 20 s of CPU); of a line past MAX_PROTOCOL_LINE nothing more is kept, and it is chat.
 */
export class UsageLines {
  private readonly lines: LineCutter;
  constructor(usage: Usage) {
    this.lines = new LineCutter(MAX_PROTOCOL_LINE, (line, cut) => {
      if (!cut) readUsageLine(usage, line);
    });
  }

  push(text: string): void {
    this.lines.push(text);
  }

  /** The output ended: a last line without a newline still counts. */
  end(): void {
    this.lines.end();
  }
}

/*
 * The event schemas' bounds, so what an agent prints can never get `usage.reported` or the
 * step's ending refused (which would leave the step running): a count is a safe whole
 * number, an amount a finite one, a tool name at most MAX_TOOL_NAME characters, at most
 * MAX_TOOLS_PER_STEP tools.
 */

function count(v: unknown): number | undefined {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) return undefined;
  const n = Math.floor(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

function amount(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
}

function toolName(name: string): string {
  return name.length <= MAX_TOOL_NAME ? name : wholeChars(name.slice(0, MAX_TOOL_NAME));
}

/** Applies a summary file's contents; malformed fields are ignored, not fatal. */
export function applySummary(usage: Usage, summary: unknown): void {
  if (typeof summary !== "object" || summary === null) return;
  const s = summary as Record<string, unknown>;
  usage.turns = count(s.turns) ?? usage.turns;
  usage.cost_usd = amount(s.cost_usd) ?? usage.cost_usd;
  if (Array.isArray(s.tools)) {
    usage.tools = new Map();
    for (const t of s.tools) {
      if (typeof t !== "object" || t === null || typeof (t as ToolTotals).name !== "string" || (t as ToolTotals).name.length === 0) continue;
      const x = t as Partial<ToolTotals> & { name: string };
      const name = toolName(x.name);
      if (!usage.tools.has(name) && usage.tools.size >= MAX_TOOLS_PER_STEP) continue;
      usage.tools.set(name, { name, calls: count(x.calls) ?? 0, duration_ms: amount(x.duration_ms) ?? 0, errors: count(x.errors) ?? 0 });
    }
  }
}
