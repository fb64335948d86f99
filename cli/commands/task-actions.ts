import { apiFor } from "../api";
import type { Task } from "../api-types";
import { loadConfig } from "../config";
import { action, type CliCommand } from "../context";
import { oneLine, printJson } from "../output";
import { checkTaskId, taskFailure } from "./task";

interface TaskAction {
  name: "cancel" | "retry";
  summary: string;
  description: string;
  /** What to say once it is done (the task as the API answered). */
  done(task: Task): string;
}

/**
 * A person's action on one task (POST /v1/tasks/{id}/cancel or /retry, operator keys): the
 * API's refusal in one line, with the fix: a 403 names the operator scope (cli/api.ts), a 409
 * says the task's state and points at `switchboard task ID`, a 404 at `switchboard tasks`.
 */
function taskActionCommand(spec: TaskAction): CliCommand {
  return {
    name: spec.name,
    register(program, ctx) {
      program
        .command(spec.name)
        .summary(spec.summary)
        .description(spec.description)
        .argument("<id>", "the task id (task_…)")
        .option("--json", "print the task as the API answers")
        .action(
          action(ctx, async (idArg: string, opts: { json?: boolean }) => {
            const id = checkTaskId(idArg);
            const api = apiFor(loadConfig(ctx.env));
            let task: Task;
            try {
              task = (await api.post<Task>(`/v1/tasks/${encodeURIComponent(id)}/${spec.name}`, undefined)).body;
            } catch (error) {
              throw taskFailure(error, id);
            }
            if (opts.json) printJson(ctx.out, task);
            else ctx.out(spec.done(task));
            return 0;
          }),
        );
    },
  };
}

/** `switchboard cancel ID [--json]`. */
export const cancelCommand = taskActionCommand({
  name: "cancel",
  summary: "cancel a task that has not ended (operator key)",
  description:
    "Cancel a task that has not ended (pending, blocked, claimed, running or waiting_input): its lease is void, so its worker's next report is refused, and the tasks that depend on it become blocked until it is retried. Needs an operator key; a task that has ended is refused (exit 1).",
  done: (t) => `Cancelled ${t.id} (${oneLine(t.title, 60)}). Tasks that depend on it are blocked until it is retried: switchboard retry ${t.id}\n`,
});

/** `switchboard retry ID [--json]`. */
export const retryCommand = taskActionCommand({
  name: "retry",
  summary: "queue a failed or cancelled task again (operator key)",
  description:
    "Queue a failed or cancelled task again, with fresh attempts; the tasks it blocked are unblocked. Needs an operator key; any other task is refused (exit 1), a blocked one with the task to retry instead.",
  done: (t) => `Queued ${t.id} (${oneLine(t.title, 60)}) again: ${t.status}, attempts ${t.attempts}/${t.max_attempts}.\n`,
});
