import { ATTEMPT_REPORT_MAX } from "../../src/domain/tasks";
import { wholeChars } from "../output";

/**
 * What an agent run reports about itself, read from its stdout the way `claude -p
 * --output-format json` (one JSON object) or `--output-format stream-json` (JSON lines, the
 * last of type `result`) print it:
 * `{"type":"result","is_error":false,"duration_ms":65000,"result":"…","total_cost_usd":0.42,
 *   "usage":{"input_tokens":…,"output_tokens":…,"cache_creation_input_tokens":…,"cache_read_input_tokens":…}}`.
 * Older versions say `cost_usd`. Tokens are the sum of the usage counts (cache reads included:
 * they are tokens the model processed). Pure: tested without a process.
 */
export interface AgentReport {
  cost_usd?: number;
  tokens?: number;
  duration_ms?: number;
  /** The agent's final answer (`result`), used when it wrote no result file. */
  result?: string;
  is_error?: boolean;
}

const TOKEN_FIELDS = ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"];

export function readAgentReport(stdout: string): AgentReport | null {
  const whole = stdout.trim();
  if (whole.startsWith("{") && whole.endsWith("}")) {
    const report = reportOf(parse(whole));
    if (report) return report;
  }
  // JSON lines: the last line that looks like a report wins (only the tail is searched).
  const lines = whole.split("\n").slice(-200);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = (lines[i] as string).trim();
    if (!line.startsWith("{")) continue;
    const report = reportOf(parse(line));
    if (report) return report;
  }
  return null;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function reportOf(value: unknown): AgentReport | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  const cost = within(nonNegative(v.total_cost_usd) ?? nonNegative(v.cost_usd), "cost_usd");
  const usage = typeof v.usage === "object" && v.usage !== null ? (v.usage as Record<string, unknown>) : null;
  const tokenCounts = usage ? TOKEN_FIELDS.map((f) => nonNegative(usage[f])).filter((n): n is number => n !== undefined) : [];
  const tokens = tokenCounts.length > 0 ? within(Math.round(tokenCounts.reduce((a, b) => a + b, 0)), "tokens") : undefined;
  const duration = within(nonNegative(v.duration_ms), "duration_ms");
  if (cost === undefined && tokens === undefined && duration === undefined && v.type !== "result") return null;
  return {
    ...(cost !== undefined ? { cost_usd: cost } : {}),
    ...(tokens !== undefined ? { tokens } : {}),
    ...(duration !== undefined ? { duration_ms: Math.round(duration) } : {}),
    ...(typeof v.result === "string" ? { result: v.result } : {}),
    ...(typeof v.is_error === "boolean" ? { is_error: v.is_error } : {}),
  };
}

/**
 * A figure within what the API takes (ATTEMPT_REPORT_MAX, the bounds of its own schema),
 * else undefined: one past them is no measurement (an agent printing 1e20 tokens), and
 * sending it would get the whole completion refused, so it is left out instead of losing the
 * task's result.
 */
const within = (n: number | undefined, field: keyof typeof ATTEMPT_REPORT_MAX) => (n !== undefined && n <= ATTEMPT_REPORT_MAX[field] ? n : undefined);

function nonNegative(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** Adds up the reports of the runs of one attempt (an agent runs again after each answer). */
export function addReports(a: AgentReport, b: AgentReport | null): AgentReport {
  if (!b) return a;
  const sum = (x?: number, y?: number) => (x === undefined ? y : y === undefined ? x : x + y);
  return {
    cost_usd: within(sum(a.cost_usd, b.cost_usd), "cost_usd"),
    tokens: within(sum(a.tokens, b.tokens), "tokens"),
    duration_ms: within(sum(a.duration_ms, b.duration_ms), "duration_ms"),
    result: b.result ?? a.result,
    is_error: b.is_error ?? a.is_error,
  };
}

/** The last `max` characters, cut at a line start when one is near, marked when cut. */
export function tail(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = wholeChars(text.slice(-max));
  const nl = cut.indexOf("\n");
  return `[… ${text.length - max + (nl >= 0 && nl < 200 ? nl + 1 : 0)} characters before]\n${nl >= 0 && nl < 200 ? cut.slice(nl + 1) : cut}`;
}

/** The first `max` characters, marked when cut (a result file over the API's limit). */
export function head(text: string, max: number): string {
  return text.length <= max ? text : `${wholeChars(text.slice(0, max - 60))}\n\n[… ${text.length - max + 60} characters cut]`;
}

/**
 * `text`, cut and marked if need be, so that as a JSON string it takes at most `maxBytes`. The
 * API refuses a body over 1 MiB whole (413), and a control character is 6 bytes in JSON
 * (`\u0000`): 200,000 NULs, within a result's 200,000 characters, made a 1.2 MB body.
 */
export function fitJson(text: string, maxBytes: number): string {
  const bytes = (t: string) => Buffer.byteLength(JSON.stringify(t));
  if (bytes(text) <= maxBytes) return text;
  const cut = (n: number) => `${wholeChars(text.slice(0, n))}\n\n[… ${text.length - n} characters cut to fit the API's body limit]`;
  // The longest start that fits with its mark: JSON bytes only grow with the length.
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (bytes(cut(mid)) <= maxBytes) lo = mid;
    else hi = mid - 1;
  }
  return cut(lo);
}

/** Why an attempt failed, for the task's result: how the agent ended and the end of its stderr. */
export function failureText(exit: { code: number | null; signal: string | null; error?: string }, stderr: string, report: AgentReport): string {
  const why = exit.error
    ? `The agent could not start: ${exit.error}.`
    : exit.code === 0
      ? "The agent reported an error (is_error)."
      : exit.signal
        ? `The agent was killed by ${exit.signal}.`
        : `The agent exited with code ${exit.code}.`;
  const end = tail(stderr.trim(), 4000);
  const detail = end ? `\n\nstderr (last lines):\n\n\`\`\`\n${end}\n\`\`\`` : report.result ? `\n\n${report.result}` : "";
  return `${why}${detail}`;
}
