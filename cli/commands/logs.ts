import { ApiFailure, apiFor } from "../api";
import type { LogLine, LogPage } from "../api-types";
import { loadConfig } from "../config";
import { action, type CliCommand, type Context, interruption, sleep } from "../context";
import { UsageError } from "../errors";
import { positiveInt } from "../options";
import { printable, printJsonLine } from "../output";

export const FOLLOW_INTERVAL_MS = 1000;
/** The API's bound on one read (src/domain/logs.ts MAX_TAIL_LINES); a follow asks for that many, to keep up with a burst. */
const MAX_LINES = 5000;

interface LogsOptions {
  task?: string;
  lines: number;
  follow?: boolean;
  json?: boolean;
}

/** A log line as `logs` prints it: time, the worker (for a task's log) or the task, the text. */
export function formatLine(ctx: Context, line: LogLine, byTask: boolean): string {
  const c = ctx.color;
  // A worker's log names the task of each line; a task's log names the worker.
  const who = byTask ? line.worker_id : (line.task_id ?? "-");
  return `${c.dim(line.at)} ${c.cyan(who)} ${printable(line.text)}\n`;
}

/**
 * `switchboard logs WORKER [--task ID] [--lines N] [--follow] [--json]`: the last lines of a
 * worker's (or a task's) log; `--follow` then asks every second for what came after the
 * cursor, until Ctrl-C. `--json` prints one object per line, so it streams with --follow.
 */
export const logsCommand: CliCommand = {
  name: "logs",
  register(program, ctx) {
    program
      .command("logs")
      .summary("a worker's or a task's log")
      .description("The last lines of a worker's log (or of a task's, with --task), oldest first; --follow keeps printing new lines until Ctrl-C.")
      .argument("[worker]", "the worker id (optional with --task; with it, only that worker's lines about the task)")
      .option("--task <id>", "the log of this task")
      .option("-n, --lines <n>", "how many of the last lines", positiveInt(MAX_LINES), 100)
      .option("-f, --follow", `keep printing new lines (asks every ${FOLLOW_INTERVAL_MS / 1000} s) until Ctrl-C`)
      .option("--json", "print each line as a JSON object, one a line")
      .action(
        action(ctx, async (worker: string | undefined, opts: LogsOptions) => {
          if (!worker && !opts.task) throw new UsageError("logs needs a worker id or --task ID", "e.g. switchboard logs exec-alpha --follow");
          const api = apiFor(loadConfig(ctx.env));
          // A task's log gathers every worker's lines about it; a worker's may be narrowed to one task.
          const byTask = opts.task !== undefined && !worker;
          const path = worker ? `/v1/workers/${encodeURIComponent(worker)}/logs` : `/v1/tasks/${encodeURIComponent(opts.task as string)}/logs`;
          const filter = worker && opts.task ? { task_id: opts.task } : {};
          const print = (page: LogPage) => {
            for (const line of page.lines) {
              if (opts.json) printJsonLine(ctx.out, line);
              else ctx.out(formatLine(ctx, line, byTask));
            }
          };
          const first = await api.get<LogPage>(path, { ...filter, lines: opts.lines });
          print(first);
          if (!opts.follow) return 0;
          let cursor = first.cursor;
          const stop = interruption();
          try {
            while (!stop.signal.aborted) {
              await sleep(FOLLOW_INTERVAL_MS, stop.signal);
              if (stop.signal.aborted) break;
              try {
                // Only the lines written after the cursor (an empty log has a cursor too).
                const page = await api.get<LogPage>(path, { ...filter, after: cursor, lines: MAX_LINES }, stop.signal);
                print(page);
                cursor = page.cursor;
              } catch (e) {
                if (stop.signal.aborted) break;
                // A refused key or a worker that is gone will not heal by waiting; a network blip may.
                if (e instanceof ApiFailure && [401, 403, 404].includes(e.status)) throw e;
                ctx.err(`${ctx.errColor.red("error:")} ${e instanceof Error ? e.message : String(e)} (retrying)\n`);
              }
            }
            return 0;
          } finally {
            stop.dispose();
          }
        }),
      );
  },
};
