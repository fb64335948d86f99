import { type Api, ApiFailure } from "./api";
import type { StatusSnapshot } from "./commands/status";
import { type Context, interruption } from "./context";
import { followEventStream, type StreamDrop } from "./event-stream";
import { printJsonLine } from "./output";
import { clockTime, parseTeamEvent, recentLine, type TeamStreamEvent } from "./recent-events";
import { RefreshScheduler } from "./refresh-scheduler";

export const TEAM_STREAM_PATH = "/v1/stream";
/** Events come in bursts (a claim is `task.claimed` and `worker.updated`): one refresh for all of them. */
export const REFRESH_DEBOUNCE_MS = 250;
/** With the stream open and quiet, a redraw now and then keeps "last seen" ageing. */
export const IDLE_REDRAW_MS = 15_000;
/** After a refresh that failed (a network blip, a 5xx), the next try. */
const RETRY_MS = 2000;
const RECENT_EVENTS = 5;

type Connection = { kind: "connecting" } | { kind: "live" } | { kind: "reconnecting"; drop: StreamDrop } | { kind: "polling"; reason: string };

export interface WatchOptions {
  api: Api;
  json: boolean;
  /** Between refreshes when the server has no team stream. */
  pollMs: number;
  load(signal: AbortSignal): Promise<StatusSnapshot>;
  render(s: StatusSnapshot): string;
}

/** A refused key will not heal by waiting; a network blip or a 5xx may. */
const refused = (e: unknown) => e instanceof ApiFailure && (e.status === 401 || e.status === 403);
const seconds = (ms: number) => `${Number((ms / 1000).toFixed(1))}s`;

/**
 * `status --watch`: follows the team stream (GET /v1/stream) and, on its events, reads the
 * status again with the same three calls as `status` (debounced) and redraws; without
 * events, every 15 s. The events say what changed, not what the counts were before, so the
 * counts are read rather than patched. Reconnects with Last-Event-ID when the stream drops;
 * polls every `pollMs` when the server has no stream (an older Worker). Ctrl-C: 0.
 */
export async function watchStatus(ctx: Context, options: WatchOptions): Promise<number> {
  const stop = interruption();
  const done = new AbortController();
  const signal = AbortSignal.any([stop.signal, done.signal]);
  const view = new WatchView(ctx, options);
  let fatal: unknown = null;
  const scheduler = new RefreshScheduler(
    async () => {
      try {
        view.show(await options.load(signal));
        return true;
      } catch (e) {
        if (signal.aborted) return true;
        if (refused(e)) {
          fatal = e;
          done.abort();
          return true;
        }
        ctx.err(`${ctx.errColor.red("error:")} ${e instanceof Error ? e.message : String(e)} (retrying)\n`);
        return false;
      }
    },
    REFRESH_DEBOUNCE_MS,
    IDLE_REDRAW_MS,
    RETRY_MS,
  );
  try {
    const end = await followEventStream(
      (lastEventId, s) => options.api.openStream(TEAM_STREAM_PATH, lastEventId, s),
      {
        onOpen() {
          view.setConnection({ kind: "live" });
          // The first draw, or what changed while the stream was down that a replay may not cover (a reset).
          scheduler.now();
        },
        onEvent(message) {
          const event = parseTeamEvent(message.event, message.data);
          if (!event) return;
          view.addEvent(event);
          scheduler.poke();
        },
        onDrop(drop) {
          view.setConnection({ kind: "reconnecting", drop });
          if (!view.drawn) scheduler.now();
        },
      },
      signal,
    );
    if (end.kind === "unsupported" && !signal.aborted) {
      view.setConnection({ kind: "polling", reason: end.reason });
      scheduler.idleMs = options.pollMs;
      scheduler.now();
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })));
    }
    if (fatal) throw fatal;
    return 0;
  } finally {
    scheduler.close();
    done.abort();
    stop.dispose();
  }
}

/** What the watch shows: the last status read, the stream's state and its last few events. */
class WatchView {
  private connection: Connection = { kind: "connecting" };
  private last: StatusSnapshot | null = null;
  private readonly recent: TeamStreamEvent[] = [];
  private readonly since = new Date().toISOString();

  constructor(
    private readonly ctx: Context,
    private readonly options: WatchOptions,
  ) {}

  get drawn(): boolean {
    return this.last !== null;
  }

  show(s: StatusSnapshot): void {
    this.last = s;
    if (this.options.json) printJsonLine(this.ctx.out, s);
    else this.draw();
  }

  /** The snapshot and a replay after it may both carry an event: it is listed once. */
  addEvent(event: TeamStreamEvent): void {
    if (this.recent.some((e) => e.id === event.id)) return;
    this.recent.push(event);
    if (this.recent.length > RECENT_EVENTS) this.recent.shift();
  }

  /**
   * On a terminal the header shows the stream's state at once (redrawn from what was last
   * read); into a pipe or file, and with --json, a change is a line on stderr, so stdout
   * keeps one redraw per read.
   */
  setConnection(next: Connection): void {
    const before = this.connection;
    this.connection = next;
    if (this.ctx.tty && !this.options.json && this.last) return this.draw();
    const c = this.ctx.errColor;
    if (next.kind === "reconnecting") this.ctx.err(`${c.yellow("reconnecting…")} ${next.drop.error} (try ${next.drop.attempt} in ${seconds(next.drop.retryInMs)})\n`);
    if (next.kind === "live" && before.kind === "reconnecting") this.ctx.err(`${c.green("live again:")} the team stream is open\n`);
    if (next.kind === "polling") this.ctx.err(`${c.yellow("no team stream:")} polling every ${seconds(this.options.pollMs)} (${next.reason})\n`);
  }

  private draw(): void {
    const s = this.last;
    if (!s) return;
    const { ctx } = this;
    const c = ctx.color;
    const header = c.dim(`${this.options.api.config.baseUrl} · ${this.state()} · Ctrl-C to stop · ${clockTime(s.at)}`);
    let recent = "";
    if (this.connection.kind !== "polling" || this.recent.length > 0) {
      const lines = this.recent.length > 0 ? this.recent.map((e) => recentLine(e, c)) : [c.dim(`no events since ${clockTime(this.since)}`)];
      recent = `\n${c.bold("Recent")}\n${lines.join("\n")}\n`;
    }
    // On a terminal the screen is redrawn; into a file or pipe each refresh follows the last.
    ctx.out(`${ctx.tty ? "\x1b[H\x1b[2J\x1b[3J" : ""}${header}\n\n${this.options.render(s)}${recent}${ctx.tty ? "" : "\n"}`);
  }

  private state(): string {
    const k = this.connection;
    if (k.kind === "live") return "live";
    if (k.kind === "connecting") return "connecting…";
    if (k.kind === "polling") return `every ${seconds(this.options.pollMs)}`;
    return `reconnecting… (${k.drop.error}; try ${k.drop.attempt} in ${seconds(k.drop.retryInMs)})`;
  }
}
