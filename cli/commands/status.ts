import type { TaskStatus } from "../../src/domain/tasks";
import { type Api, ApiFailure, apiFor } from "../api";
import type { Question, TaskCounts, Worker } from "../api-types";
import { loadConfig } from "../config";
import { action, type CliCommand, type Context, interruption, sleep } from "../context";
import { ago, oneLine, paintStatus, printJson, printJsonLine, renderTable } from "../output";

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

/** `switchboard status [--watch] [--json]`. */
export const statusCommand: CliCommand = {
  name: "status",
  register(program, ctx) {
    program
      .command("status")
      .summary("workers, queue counts and open questions")
      .description("The team's workers (worker, role, status, current task, completed), how many tasks are in each status, and the open questions.")
      .option("-w, --watch", `refresh every ${WATCH_INTERVAL_MS / 1000} s until Ctrl-C`)
      .option("--json", "print JSON (with --watch: one object per line)")
      .action(
        action(ctx, async (opts: { watch?: boolean; json?: boolean }) => {
          const api = apiFor(loadConfig(ctx.env));
          const show = (s: StatusSnapshot) => {
            if (opts.json) return opts.watch ? printJsonLine(ctx.out, s) : printJson(ctx.out, s);
            // On a terminal the screen is redrawn; into a file or pipe each refresh follows the last.
            const header = opts.watch ? `${ctx.color.dim(`${api.config.baseUrl} · every ${WATCH_INTERVAL_MS / 1000}s · Ctrl-C to stop · ${new Date(s.at).toLocaleTimeString()}`)}\n\n` : "";
            ctx.out(`${opts.watch && ctx.tty ? "\x1b[H\x1b[2J\x1b[3J" : ""}${header}${renderStatus(ctx, s)}${opts.watch && !ctx.tty ? "\n" : ""}`);
          };
          if (!opts.watch) {
            show(await fetchStatus(api));
            return 0;
          }
          // Polling for now; the team stream (GET /v1/stream) can replace it once it exists.
          const stop = interruption();
          try {
            while (!stop.signal.aborted) {
              try {
                show(await fetchStatus(api, stop.signal));
              } catch (e) {
                if (stop.signal.aborted) break;
                // A refused key will not heal by waiting; a network blip or a 5xx may.
                if (e instanceof ApiFailure && (e.status === 401 || e.status === 403)) throw e;
                ctx.err(`${ctx.errColor.red("error:")} ${e instanceof Error ? e.message : String(e)} (retrying)\n`);
              }
              await sleep(WATCH_INTERVAL_MS, stop.signal);
            }
            return 0;
          } finally {
            stop.dispose();
          }
        }),
      );
  },
};
