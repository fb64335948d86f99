import Table from "cli-table3";
import pc from "picocolors";

export type Colors = ReturnType<typeof pc.createColors>;

/**
 * Colour only on a terminal, and never with NO_COLOR set (no-color.org) or TERM=dumb.
 * picocolors' own detection also turns colour on under CI=…, which would put escapes in
 * logs: the decision is made here and handed to `createColors`.
 */
export function colorsFor(tty: boolean, env: NodeJS.ProcessEnv): Colors {
  return pc.createColors(tty && !env.NO_COLOR && env.TERM !== "dumb");
}

/** A table as the timing summary draws it; cli-table3 measures cells without their colour codes. */
export function renderTable(c: Colors, head: string[], rows: string[][]): string {
  // compact: a rule under the header only, so a long list of tasks stays one line a task.
  const table = new Table({ head: head.map((h) => c.bold(h)), style: { head: [], border: [], compact: true } });
  table.push(...rows);
  return table.toString();
}

export function printJson(out: (text: string) => void, value: unknown): void {
  out(`${JSON.stringify(value, null, 2)}\n`);
}

/** One JSON object per line, for output that streams (`logs --follow`, `status --watch`). */
export function printJsonLine(out: (text: string) => void, value: unknown): void {
  out(`${JSON.stringify(value)}\n`);
}

/** "12s ago", "3m ago", "5h ago", "2d ago"; "-" for none. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (Number.isNaN(s)) return iso;
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/**
 * `text` without the half of a surrogate pair a cut by UTF-16 index may leave at either end:
 * the API refuses strings that are not valid Unicode, so a cut emoji would lose the request.
 */
export function wholeChars(text: string): string {
  return text.replace(/^[\uDC00-\uDFFF]/, "").replace(/[\uD800-\uDBFF]$/, "");
}

/**
 * `text` safe to print on a terminal: control characters (C0 but tab, DEL, C1) shown as
 * `cat -v` shows them (`^[`, `^?`) or as `<U+009B>`, never sent. A task title can come from a
 * GitHub issue and a log line from any agent: ESC sequences in them would retitle the
 * terminal, clear the screen or worse.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000A-\u001F\u007F-\u009F]/g, (ch) => {
    const code = ch.charCodeAt(0);
    if (code === 0x7f) return "^?";
    if (code < 0x20) return `^${String.fromCharCode(code + 64)}`;
    return `<U+${code.toString(16).toUpperCase().padStart(4, "0")}>`;
  });
}

/**
 * Multi-line text from others (a task's description, its result), each line printable and
 * indented, at most `maxLines` of them: the rest is counted, not shown.
 */
export function textBlock(text: string, maxLines: number, indent = "  "): { text: string; hidden: number } {
  const lines = text.replace(/^\s*\n/, "").replace(/\s+$/, "").split("\n").map((l) => l.replace(/\r$/, ""));
  const shown = lines.slice(0, maxLines).map((l) => (l === "" ? "" : `${indent}${printable(l)}`));
  return { text: shown.join("\n"), hidden: lines.length - Math.min(lines.length, maxLines) };
}

/** Dollars: cents, or four decimals for less than a cent (an agent's step can cost $0.0042). */
export function usd(value: number): string {
  return `$${value.toFixed(value !== 0 && Math.abs(value) < 0.01 ? 4 : 2)}`;
}

/** A count with thousands separators (`1,234,567`), the same on every machine. */
export function count(value: number): string {
  return value.toLocaleString("en-US");
}

/** The first line of `text`, cut to `max` characters with an ellipsis, printable. */
export function oneLine(text: string, max: number): string {
  const first = printable((text.trim().split("\n")[0] ?? "").replace(/\r$/, ""));
  const more = first.length > max || text.trim().includes("\n");
  return more ? `${first.slice(0, max - 1).trimEnd()}…` : first;
}

const STATUS_COLOURS: Record<string, keyof Colors> = {
  // workers
  working: "green",
  idle: "dim",
  waiting: "yellow",
  lost: "red",
  // tasks
  pending: "cyan",
  claimed: "blue",
  running: "green",
  waiting_input: "yellow",
  blocked: "magenta",
  completed: "dim",
  failed: "red",
  cancelled: "dim",
  // questions
  open: "yellow",
  answered: "dim",
};

/** A worker, task or question status in its colour (plain without colour). */
export function paintStatus(c: Colors, status: string): string {
  const name = STATUS_COLOURS[status];
  const paint = name ? c[name] : undefined;
  return typeof paint === "function" ? (paint as (s: string) => string)(status) : status;
}
