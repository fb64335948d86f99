import type { TaskStatus } from "../../src/domain/tasks";
import { type Api, apiFor } from "../api";
import type { Question, TaskCounts, Worker } from "../api-types";
import { loadConfig } from "../config";
import { action, type CliCommand, type Context } from "../context";
import { secondsOption } from "../options";
import { ago, oneLine, paintStatus, printJson, renderTable } from "../output";
import { watchStatus } from "../status-watch";

/** How often `--watch` reads the status from a server without the team stream (`--interval`). */
export const WATCH_INTERVAL_MS = 2000;
const MAX_WORKERS = 10_000;
const MAX_QUESTIONS = 1000;
/** The queue in the order a task moves through it: waiting, held by a worker, ended. */
const QUEUE_ORDER: TaskStatus[] = ["pending", "blocked", "claimed", "running", "waiting_input", "completed", "failed", "cancelled"];

export interface StatusSnapshot {
  at: string;
  workers: Worker[];
  queue: TaskCounts;
  questions: Question[];
  /** More workers or open questions than were fetched (10,000 and 1,000). */
  truncated: { workers: boolean; questions: boolean };
}

/** The team at a glance: three reads (workers, counts by status, open questions). */
export async function fetchStatus(api: Api, signal?: AbortSignal): Promise<StatusSnapshot> {
  const [workers, queue, questions] = await Promise.all([
    api.listAll<Worker>("/v1/workers", {}, MAX_WORKERS, signal),
    api.get<TaskCounts>("/v1/tasks/counts", {}, signal),
    api.listAll<Question>("/v1/questions", { status: "open" }, MAX_QUESTIONS, signal),
  ]);
  return { at: new Date().toISOString(), workers: workers.items, queue, questions: questions.items, truncated: { workers: workers.truncated, questions: questions.truncated } };
}

export function renderStatus(ctx: Context, s: StatusSnapshot): string {
  const c = ctx.color;
  const now = Date.parse(s.at);
  const parts: string[] = [];
  parts.push(c.bold(`Workers (${s.workers.length}${s.truncated.workers ? "+" : ""})`));
  parts.push(
    s.workers.length === 0
      ? c.dim("no workers yet: a worker appears with its first heartbeat or claim")
      : renderTable(
          c,
          ["worker", "role", "status", "current task", "completed", "last seen"],
          s.workers.map((w) => [w.id, w.role, paintStatus(c, w.status), w.current_task ?? "-", String(w.tasks_completed), ago(w.last_seen_at, now)]),
        ),
  );
  parts.push("", c.bold(`Queue (${s.queue.total} tasks)`));
  parts.push(renderTable(c, QUEUE_ORDER.map((st) => paintStatus(c, st)), [QUEUE_ORDER.map((st) => String(s.queue.counts[st] ?? 0))]));
  parts.push("", c.bold(`Open questions (${s.questions.length}${s.truncated.questions ? "+" : ""})`));
  parts.push(
    s.questions.length === 0
      ? c.dim("none")
      : renderTable(
          c,
          ["question", "worker", "task", "asked", "text"],
          s.questions.map((q) => [q.id, q.worker_id, q.task_id, ago(q.created_at, now), oneLine(q.text, 60)]),
        ),
    );
  if (s.questions.length > 0) parts.push(c.dim("answer with: switchboard respond <question|worker> \"…\""));
  return `${parts.join("\n")}\n`;
}

/** `switchboard status [--watch [--interval S]] [--json]`. */
export const statusCommand: CliCommand = {
  name: "status",
  register(program, ctx) {
    program
      .command("status")
      .summary("workers, queue counts and open questions")
      .description(
        "The team's workers (worker, role, status, current task, completed), how many tasks are in each status, and the open questions. --watch follows the team stream (GET /v1/stream) and redraws on every change, with the last few events under the tables; a server without the stream is polled.",
      )
      .option("-w, --watch", "redraw on every change until Ctrl-C (live from the team stream)")
      .option("--interval <seconds>", "with --watch: seconds between reads when the server has no team stream and is polled", secondsOption(0.1, 3600), WATCH_INTERVAL_MS / 1000)
      .option("--json", "print JSON (with --watch: one object per line, one line per redraw)")
      .action(
        action(ctx, async (opts: { watch?: boolean; interval: number; json?: boolean }) => {
          const api = apiFor(loadConfig(ctx.env));
          if (!opts.watch) {
            const s = await fetchStatus(api);
            if (opts.json) printJson(ctx.out, s);
            else ctx.out(renderStatus(ctx, s));
            return 0;
          }
          return watchStatus(ctx, {
            api,
            json: opts.json === true,
            pollMs: Math.round(opts.interval * 1000),
            load: (signal) => fetchStatus(api, signal),
            render: (s) => renderStatus(ctx, s),
          });
        }),
      );
  },
};
