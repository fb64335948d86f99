import { type Command, Option } from "commander";
import { ROLE_PATTERN, TASK_STATUSES, type TaskStatus } from "../../src/domain/tasks";
import { apiFor } from "../api";
import type { Task } from "../api-types";
import { loadConfig } from "../config";
import { action, type CliCommand } from "../context";
import { UsageError } from "../errors";
import { positiveInt } from "../options";
import { ago, oneLine, paintStatus, printable, printJson, renderTable } from "../output";

/** `switchboard tasks [--status S] [--role R] [--limit N] [--json]`: newest first. */
export const tasksCommand: CliCommand = {
  name: "tasks",
  register(program, ctx) {
    program
      .command("tasks")
      .summary("list tasks, newest first")
      .description("The team's tasks, newest first: id, title, role, priority, status, attempts, worker, updated.")
      .addOption(new Option("--status <status>", "only tasks in this status").choices(TASK_STATUSES))
      .option("--role <role>", "only tasks of this role")
      .option("-n, --limit <n>", "at most this many", positiveInt(10_000), 50)
      .option("--json", `print {"items": [...], "next_cursor": …} as the API gives it`)
      // Words are still bad usage, but `tasks task_…` is a person asking for one task: say how.
      .allowExcessArguments()
      .action(
        action(ctx, async (opts: { status?: TaskStatus; role?: string; limit: number; json?: boolean }, command: Command) => {
          const [word] = command.args;
          if (word !== undefined) throw new UsageError(`tasks takes no arguments (got ${printable(word)})`, `one task in full is \`switchboard task ${printable(word)}\``);
          if (opts.role !== undefined && !ROLE_PATTERN.test(opts.role)) throw new UsageError(`--role ${opts.role} is not a role name`, "roles are lowercase: a letter, then letters, digits, '_' or '-' (e.g. executor)");
          const api = apiFor(loadConfig(ctx.env));
          const { items, next_cursor } = await api.upTo<Task>("/v1/tasks", { status: opts.status, role: opts.role }, opts.limit);
          if (opts.json) {
            printJson(ctx.out, { items, next_cursor });
            return 0;
          }
          const c = ctx.color;
          if (items.length === 0) {
            ctx.out(`${c.dim(`no tasks${opts.status ? ` ${opts.status}` : ""}${opts.role ? ` for ${opts.role}` : ""}`)}\n`);
            return 0;
          }
          const now = Date.now();
          ctx.out(
            `${renderTable(
              c,
              ["id", "title", "role", "priority", "status", "attempts", "worker", "updated"],
              items.map((t) => [t.id, oneLine(t.title, 48), t.role, t.priority, paintStatus(c, t.status), `${t.attempts}/${t.max_attempts}`, t.worker_id ?? "-", ago(t.updated_at, now)]),
            )}\n`,
          );
          if (next_cursor) ctx.err(c.dim(`more than ${items.length}: raise --limit, or narrow with --status and --role\n`));
          return 0;
        }),
      );
  },
};
