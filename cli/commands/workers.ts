import { apiFor } from "../api";
import type { Worker } from "../api-types";
import { loadConfig } from "../config";
import { action, type CliCommand } from "../context";
import { positiveInt } from "../options";
import { ago, paintStatus, printable, printJson, renderTable, usd } from "../output";

/**
 * `switchboard workers [--limit N] [--json]`: the team's workers by id, with what each has
 * cost (`status` shows them too, without the cost, among the queue and the questions).
 */
export const workersCommand: CliCommand = {
  name: "workers",
  register(program, ctx) {
    program
      .command("workers")
      .summary("list the team's workers and what each has cost")
      .description("The team's workers by id (GET /v1/workers): role, status, current task, tasks completed, cost so far, last seen.")
      .option("-n, --limit <n>", "at most this many", positiveInt(10_000), 10_000)
      .option("--json", `print {"items": [...], "next_cursor": …} as the API gives it`)
      .action(
        action(ctx, async (opts: { limit: number; json?: boolean }) => {
          const api = apiFor(loadConfig(ctx.env));
          const page = await api.upTo<Worker>("/v1/workers", {}, opts.limit);
          if (opts.json) {
            printJson(ctx.out, page);
            return 0;
          }
          const c = ctx.color;
          if (page.items.length === 0) {
            ctx.out(`${c.dim("no workers yet: a worker appears with its first heartbeat or claim")}\n`);
            return 0;
          }
          const now = Date.now();
          ctx.out(
            `${renderTable(
              c,
              ["worker", "role", "status", "current task", "completed", "cost", "last seen"],
              page.items.map((w) => [printable(w.id), w.role, paintStatus(c, w.status), w.current_task ?? "-", String(w.tasks_completed), usd(w.cost_usd), ago(w.last_seen_at, now)]),
            )}\n`,
          );
          if (page.next_cursor) ctx.err(c.dim(`more than ${page.items.length}: raise --limit\n`));
          return 0;
        }),
      );
  },
};
