import { CLIENT_ID_PATTERN } from "../../src/domain/events";
import { type Api, ApiFailure, apiFor } from "../api";
import type { LogPage, Task } from "../api-types";
import { loadConfig } from "../config";
import { action, type CliCommand, type Context } from "../context";
import { CliError, UsageError } from "../errors";
import { positiveInt } from "../options";
import { ago, count, printable, printJson, paintStatus, textBlock, usd } from "../output";
import { formatDuration } from "../summary-table";
import { formatLine } from "./logs";

/** The API's bound on one log read (src/domain/logs.ts MAX_TAIL_LINES). */
const MAX_LOG_LINES = 5000;
/** A description or result longer than this many lines is cut in the human view (`--json` has it all). */
const MAX_TEXT_LINES = 40;

/** A task id as the API takes it, checked before any request: a wrong one is bad usage (exit 2), not the API's 400. */
export function checkTaskId(id: string): string {
  if (id.trim() === "") throw new UsageError("the task id is empty", "`switchboard tasks` lists the team's tasks and their ids");
  if (!CLIENT_ID_PATTERN.test(id)) throw new UsageError(`not a task id: ${JSON.stringify(id)}`, "task ids look like task_…: `switchboard tasks` lists them");
  return id;
}

/** A refusal about one task, with the hint a person needs: which command shows it, or lists the others. */
export function taskFailure(error: unknown, id: string): unknown {
  if (!(error instanceof ApiFailure)) return error;
  if (error.status === 404) return new ApiFailure(error.status, error.problem, error.message, "`switchboard tasks` lists the team's tasks and their ids");
  if (error.status === 409) return new ApiFailure(error.status, error.problem, error.message, `\`switchboard task ${id}\` shows its status and why`);
  return error;
}

export async function fetchTask(api: Api, id: string): Promise<Task> {
  try {
    return await api.get<Task>(`/v1/tasks/${encodeURIComponent(id)}`);
  } catch (error) {
    throw taskFailure(error, id);
  }
}

/** `label  value` rows, the labels padded to one width. */
function fields(ctx: Context, rows: [string, string | null][]): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows
    .filter((r): r is [string, string] => r[1] !== null)
    .map(([label, value]) => `${ctx.color.dim(label.padEnd(width))}  ${value}`)
    .join("\n");
}

/** A time as the API gave it, and how long ago. */
const when = (iso: string | null, now: number) => (iso ? `${iso} (${ago(iso, now)})` : null);

/** A section of text from others: a heading, the text (printable, indented), and what was cut. */
function section(ctx: Context, heading: string, text: string): string {
  const block = textBlock(text, MAX_TEXT_LINES);
  const more = block.hidden > 0 ? `\n${ctx.color.dim(`  … ${block.hidden} more lines: --json has all of it`)}` : "";
  return `${ctx.color.bold(heading)}\n${block.text || ctx.color.dim("  (empty)")}${more}`;
}

export function renderTask(ctx: Context, t: Task, now = Date.now()): string {
  const c = ctx.color;
  const leased = t.status === "claimed" || t.status === "running" || t.status === "waiting_input";
  const backoff = t.status === "pending" && Date.parse(t.available_at) > now;
  const parts = [
    `${c.bold(t.id)}  ${printable(t.title)}`,
    fields(ctx, [
      ["status", `${paintStatus(c, t.status)}, attempts ${t.attempts}/${t.max_attempts}`],
      ["role", t.role],
      ["priority", t.priority],
      ["source", t.source],
      ["worker", t.worker_id ? printable(t.worker_id) : "-"],
      ["depends on", t.depends_on.length > 0 ? t.depends_on.join(", ") : "-"],
      ["blocked by", t.blocked_by ? `${t.blocked_by} (failed or cancelled: \`switchboard retry ${t.blocked_by}\` unblocks this one)` : null],
      ["cost", `${usd(t.cost_usd)}, ${count(t.tokens)} tokens, ${formatDuration(t.duration_ms)} of agent time`],
      ["created", when(t.created_at, now)],
      ["claimed", when(t.claimed_at, now)],
      ["lease until", leased ? t.lease_expires_at : null],
      ["retry after", backoff ? t.available_at : null],
      ["ended", when(t.completed_at, now)],
      ["updated", when(t.updated_at, now)],
    ]),
    "",
    section(ctx, "Description", t.description),
  ];
  // A failed task's result is why it failed; a cancelled one may keep what its last attempt said.
  if (t.result !== null) parts.push("", section(ctx, t.status === "failed" ? "Why it failed" : "Result", t.result));
  return `${parts.join("\n")}\n`;
}

/**
 * `switchboard task ID [--lines N | --no-log] [--json]`: one task in full, and the last lines
 * of its log (GET /v1/tasks/{id}/logs: one indexed read and an R2 object per batch, so a few
 * lines are cheap). `--json` prints the task as the API gives it, without the log.
 */
export const taskCommand: CliCommand = {
  name: "task",
  register(program, ctx) {
    program
      .command("task")
      .summary("one task: status, attempts, worker, result or why it failed, cost, log tail")
      .description(
        "One task in full: status and attempts, role, priority, worker, dependencies and what blocks it, cost, times, its description and its result (for a failed task, why it failed), then the last lines of its log from every worker (GET /v1/tasks/{id}/logs). --json prints the task as the API gives it (no log: `switchboard logs --task ID --json` has that).",
      )
      .argument("<id>", "the task id (task_…)")
      .option("-n, --lines <n>", "how many of the last log lines to show", positiveInt(MAX_LOG_LINES), 10)
      .option("--no-log", "leave the log out")
      .option("--json", "print the task as the API gives it")
      .action(
        action(ctx, async (idArg: string, opts: { lines: number; log: boolean; json?: boolean }) => {
          const id = checkTaskId(idArg);
          const api = apiFor(loadConfig(ctx.env));
          if (opts.json) {
            printJson(ctx.out, await fetchTask(api, id));
            return 0;
          }
          // Both at once; the task decides (a 404 is about it), a log that cannot be read is said after it.
          const [task, log] = await Promise.allSettled([fetchTask(api, id), opts.log ? api.get<LogPage>(`/v1/tasks/${encodeURIComponent(id)}/logs`, { lines: opts.lines }) : Promise.resolve(null)]);
          if (task.status === "rejected") throw task.reason;
          ctx.out(renderTask(ctx, task.value));
          if (log.status === "rejected") {
            const why = log.reason instanceof Error ? log.reason.message : String(log.reason);
            throw new CliError(`the task's log could not be read: ${why}`, 1, `try again, or read it alone with \`switchboard logs --task ${id}\``);
          }
          if (log.value) {
            const c = ctx.color;
            ctx.out(`\n${c.bold(`Log (last ${opts.lines} lines)`)}\n`);
            if (log.value.lines.length === 0) ctx.out(`${c.dim("  no lines yet")}\n`);
            for (const line of log.value.lines) ctx.out(`  ${formatLine(ctx, line, true)}`);
            if (log.value.lines.length === opts.lines) ctx.out(`${c.dim(`  more with: switchboard logs --task ${id} --lines N (or --follow)`)}\n`);
          }
          return 0;
        }),
      );
  },
};
