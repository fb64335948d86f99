import { readFileSync } from "node:fs";
import { Option } from "commander";
import { PRIORITIES, type Priority, ROLE_PATTERN } from "../../src/domain/tasks";
import { apiFor } from "../api";
import type { Task } from "../api-types";
import { loadConfig } from "../config";
import { action, type CliCommand } from "../context";
import { UsageError } from "../errors";
import { collect, positiveInt, textOrStdin } from "../options";
import { printJson } from "../output";

interface AddTaskOptions {
  role: string;
  priority?: Priority;
  description?: string;
  descriptionFile?: string;
  dependsOn?: string[];
  maxAttempts?: number;
  idempotencyKey?: string;
  json?: boolean;
}

/** `switchboard add-task TITLE --role R …`: queues a task and prints its id. */
export const addTaskCommand: CliCommand = {
  name: "add-task",
  register(program, ctx) {
    program
      .command("add-task")
      .summary("queue a task for a role")
      .description("Queue a task for a role and print its id.")
      .argument("<title>", "what to do, in a line")
      .requiredOption("--role <role>", "the role that takes it: executor, planner, documentation, …")
      .addOption(new Option("--priority <priority>", "how urgent (default normal)").choices(PRIORITIES))
      .option("--description <markdown>", "the details, in Markdown; - reads them from stdin")
      .option("--description-file <file>", "read the description from a file")
      .option("--depends-on <id>", "a task that must complete first (repeatable)", collect)
      .option("--max-attempts <n>", "claims before it fails for good (default 3)", positiveInt(100))
      .option("--idempotency-key <key>", "a second add with the same key returns the first task")
      .option("--json", "print the task as JSON")
      .action(
        action(ctx, async (title: string, opts: AddTaskOptions) => {
          // The API refuses a blank title too, but that would be exit 1 after a request: it is bad usage.
          if (title.trim() === "") throw new UsageError("the title is empty", 'say what to do in a line: switchboard add-task "Fix the login bug" --role executor');
          if (!ROLE_PATTERN.test(opts.role)) throw new UsageError(`--role ${opts.role} is not a role name`, "roles are lowercase: a letter, then letters, digits, '_' or '-' (e.g. executor)");
          if (opts.description !== undefined && opts.descriptionFile !== undefined) throw new UsageError("give --description or --description-file, not both");
          let description: string | undefined;
          if (opts.descriptionFile !== undefined) {
            try {
              description = readFileSync(opts.descriptionFile, "utf8");
            } catch (e) {
              throw new UsageError(`cannot read --description-file ${opts.descriptionFile}: ${(e as Error).message}`);
            }
          } else if (opts.description !== undefined) {
            description = await textOrStdin(ctx, opts.description, "--description");
          }
          const api = apiFor(loadConfig(ctx.env));
          const { status, body: task } = await api.post<Task>("/v1/tasks", {
            title,
            role: opts.role,
            priority: opts.priority,
            description,
            depends_on: opts.dependsOn,
            max_attempts: opts.maxAttempts,
            idempotency_key: opts.idempotencyKey,
          });
          if (opts.json) printJson(ctx.out, task);
          else ctx.out(`${task.id}\n`);
          if (status === 200) ctx.err(`note: ${task.id} was created earlier with this idempotency key (status ${task.status}); nothing new was queued\n`);
          else if (task.status === "blocked" && !opts.json) ctx.err(`note: ${task.id} is blocked: its dependency ${task.blocked_by} failed or was cancelled\n`);
          return 0;
        }),
      );
  },
};
