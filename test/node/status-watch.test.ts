import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Api, ApiFailure } from "../../cli/api";
import { followEventStream, type StreamDrop } from "../../cli/event-stream";
import { colorsFor } from "../../cli/output";
import { clockTime, parseTeamEvent, recentLine, type TeamStreamEvent } from "../../cli/recent-events";
import { RefreshScheduler } from "../../cli/refresh-scheduler";

/** `status --watch`'s parts without a Worker: the "Recent" lines, the SSE client, the refresh scheduler. */

const plain = colorsFor(false, {});
const AT = "2026-11-02T09:05:07.000Z";
const event = (type: string, data: Record<string, unknown>): TeamStreamEvent => ({ id: `tev_${type}`, type, at: AT, data });
const task = { id: "task_1", title: "Fix the login bug", role: "executor", status: "pending", attempts: 0, max_attempts: 3 };

describe("Recent lines", () => {
  it("name the time, the type and the task, worker or question, on one line", () => {
    const t = clockTime(AT);
    expect(t).toMatch(/^\d\d:05:07$/);
    const line = (type: string, data: Record<string, unknown>) => recentLine(event(type, data), plain);
    expect(line("task.created", { task })).toBe(`${t} task.created         Fix the login bug (task_1)`);
    expect(line("task.claimed", { task: { ...task, status: "claimed" }, worker_id: "exec-alpha" })).toBe(`${t} task.claimed         Fix the login bug (task_1) by exec-alpha`);
    expect(line("task.failed", { task, reason: "lease expired" })).toBe(`${t} task.failed          Fix the login bug (task_1): lease expired`);
    expect(line("task.retry_scheduled", { task })).toBe(`${t} task.retry_scheduled Fix the login bug (task_1)`);
    expect(line("task.blocked", { task_id: "task_2", blocked_by: "task_1" })).toBe(`${t} task.blocked         task_2 blocked by task_1`);
    expect(line("task.unblocked", { task_id: "task_2" })).toBe(`${t} task.unblocked       task_2 unblocked`);
    expect(line("worker.updated", { worker: { id: "exec-alpha", role: "executor", status: "working", current_task: "task_1" } })).toBe(`${t} worker.updated       exec-alpha (executor) working on task_1`);
    expect(line("worker.updated", { worker: { id: "exec-alpha", role: "executor", status: "idle", current_task: null } })).toBe(`${t} worker.updated       exec-alpha (executor) idle`);
    const question = { id: "q_1", worker_id: "exec-alpha", task_id: "task_1", text: "Postgres or **SQLite**?\nSay why.", status: "open" };
    expect(line("question.asked", { question })).toBe(`${t} question.asked       exec-alpha asks: Postgres or **SQLite**?…`);
    expect(line("question.answered", { question: { ...question, text: "Tabs?", status: "answered" } })).toBe(`${t} question.answered    exec-alpha was answered: Tabs?`);
    expect(line("budget.reached", { day: "2026-11-02", daily_budget_usd: 25, spent_usd: 25.1 })).toBe(`${t} budget.reached       daily budget $25.00 reached, $25.10 spent on 2026-11-02 (UTC)`);
    // A type this CLI does not know yet, and fields missing: still one line, never a throw.
    expect(line("task.archived", {})).toBe(`${t} task.archived        ? (?)`);
    expect(line("team.renamed", { name: "x" })).toBe(`${t} team.renamed`);
    expect(recentLine({ ...event("task.created", { task }), at: "not a time" }, plain)).toMatch(/^--:--:-- task\.created/);
  });

  it("cut long titles and texts to keep one line an event, and colour only when asked to", () => {
    const long = recentLine(event("task.created", { task: { ...task, title: "x".repeat(300) } }), plain);
    expect(long).not.toContain("\n");
    expect(long.length).toBeLessThan(110);
    expect(long).toContain("…");
    const coloured = recentLine(event("task.failed", { task }), colorsFor(true, {}));
    expect(coloured).toMatch(/\x1b\[31mtask\.failed/);
  });

  it("come only from team events: not the snapshot, a reset or data that is not one", () => {
    expect(parseTeamEvent("snapshot", JSON.stringify({ tasks: {}, workers: [], open_questions: [] }))).toBeNull();
    expect(parseTeamEvent("reset", JSON.stringify({ reason: "gone" }))).toBeNull();
    expect(parseTeamEvent("task.created", "not json")).toBeNull();
    expect(parseTeamEvent("task.created", JSON.stringify({ type: "task.created" }))).toBeNull();
    const body = { id: "tev_1", type: "task.created", at: AT, data: { task }, received_at: AT };
    expect(parseTeamEvent("task.created", JSON.stringify(body))).toEqual({ id: "tev_1", type: "task.created", at: AT, data: { task } });
  });
});

/** A local SSE server whose answers the test scripts, one handler per request in turn. */
type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let closeServer: (() => Promise<void>) | null = null;
afterEach(async () => {
  await closeServer?.();
  closeServer = null;
});

async function serve(handlers: Handler[]) {
  const seen: { lastEventId: string | null; authorization: string | null }[] = [];
  const server = createServer((req, res) => {
    seen.push({ lastEventId: (req.headers["last-event-id"] as string | undefined) ?? null, authorization: req.headers.authorization ?? null });
    const handler = handlers[Math.min(seen.length, handlers.length) - 1] as Handler;
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closeServer = () => new Promise((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const api = new Api({ baseUrl: url, apiKey: "sb_test", source: { url: "env", apiKey: "env" }, path: "/dev/null" });
  return { seen, open: (id: string | null, signal: AbortSignal) => api.openStream("/v1/stream", id, signal) };
}

const sse = (res: ServerResponse, text: string, end = true) => {
  res.writeHead(200, { "Content-Type": "text/event-stream" });
  res.write(text);
  if (end) res.end();
};

function follow(open: (id: string | null, s: AbortSignal) => Promise<Response>, options: { maxBackoffMs?: number; silenceMs?: number; stopAfterEvents?: number } = {}) {
  const controller = new AbortController();
  const events: string[] = [];
  const drops: StreamDrop[] = [];
  let opens = 0;
  const ended = followEventStream(
    open,
    {
      onOpen: () => void (opens += 1),
      onEvent: (m) => {
        events.push(`${m.id ?? "-"} ${m.event ?? "message"} ${m.data}`);
        if (events.length === options.stopAfterEvents) controller.abort();
      },
      onDrop: (d) => void drops.push(d),
    },
    controller.signal,
    options,
  );
  return { ended, events, drops, opens: () => opens, stop: () => controller.abort() };
}

describe("the team stream client", () => {
  it("reconnects with Last-Event-ID after the server's retry, doubling the wait up to the cap", async () => {
    const server = await serve([
      (_q, res) => sse(res, "retry: 20\n\nid: 7\nevent: snapshot\ndata: {}\n\n: heartbeat\n\nid: 8\nevent: task.created\ndata: {\"a\":1}\n\n"),
      (_q, res) => res.writeHead(503).end("busy"),
      (_q, res) => res.writeHead(502).end("bad gateway"),
      // an event without an id keeps the last one
      (_q, res) => sse(res, "event: reset\ndata: {}\n\nid: 9\nevent: task.claimed\ndata: {\"b\":2}\n\n", false),
    ]);
    const f = follow(server.open, { maxBackoffMs: 50, stopAfterEvents: 4 });
    expect(await f.ended).toEqual({ kind: "stopped" });
    expect(f.events).toEqual(["7 snapshot {}", '8 task.created {"a":1}', "- reset {}", '9 task.claimed {"b":2}']);
    expect(server.seen.map((s) => s.lastEventId)).toEqual([null, "8", "8", "8"]);
    expect(server.seen.every((s) => s.authorization === "Bearer sb_test")).toBe(true);
    expect(f.drops.map((d) => [d.attempt, d.retryInMs])).toEqual([
      [1, 20],
      [2, 40],
      [3, 50],
    ]);
    expect(f.drops[0]?.error).toBe("the stream ended");
    expect(f.drops[1]?.error).toContain("HTTP 503");
    expect(f.opens()).toBe(2);
  });

  it("says unsupported for a server without the stream, and gives up on a refused key", async () => {
    const old = await serve([(_q, res) => res.writeHead(404, { "Content-Type": "application/problem+json" }).end(JSON.stringify({ title: "Not found", status: 404, detail: "No route GET /v1/stream." }))]);
    expect(await follow(old.open).ended).toEqual({ kind: "unsupported", reason: "Not found: No route GET /v1/stream." });
    await closeServer?.();

    const html = await serve([(_q, res) => res.writeHead(200, { "Content-Type": "text/html" }).end("<html>")]);
    const r = await follow(html.open).ended;
    expect(r.kind).toBe("unsupported");
    expect(r.kind === "unsupported" && r.reason).toContain("text/html, not text/event-stream");
    await closeServer?.();

    const refused = await serve([(_q, res) => res.writeHead(401, { "Content-Type": "application/problem+json" }).end(JSON.stringify({ title: "Unauthorized", status: 401 }))]);
    await expect(follow(refused.open).ended).rejects.toBeInstanceOf(ApiFailure);
  });

  it("takes a silent stream for a dead one and opens it again", async () => {
    const server = await serve([(_q, res) => sse(res, "retry: 10\n\n", false), (_q, res) => sse(res, "id: 3\nevent: task.created\ndata: {}\n\n", false)]);
    const f = follow(server.open, { silenceMs: 150, stopAfterEvents: 1 });
    await f.ended;
    expect(f.drops).toEqual([{ error: "nothing received for 0.15 s", attempt: 1, retryInMs: 10 }]);
    expect(f.events).toEqual(["3 task.created {}"]);
  });

  it("stops at once when asked, with a stream open", async () => {
    const server = await serve([(_q, res) => sse(res, "retry: 10\n\n", false)]);
    const f = follow(server.open);
    while (f.opens() === 0) await new Promise((r) => setTimeout(r, 5));
    f.stop();
    expect(await f.ended).toEqual({ kind: "stopped" });
    expect(f.drops).toEqual([]);
  });
});

describe("the refresh scheduler", () => {
  it("turns a burst of pokes into one trailing refresh, follows a poke during a refresh with another, and refreshes when idle", async () => {
    const starts: number[] = [];
    let release: (() => void) | null = null;
    const t0 = Date.now();
    const scheduler = new RefreshScheduler(
      async () => {
        starts.push(Date.now() - t0);
        if (starts.length === 2) await new Promise<void>((r) => (release = r));
        return true;
      },
      40,
      300,
      1000,
    );
    try {
      for (let i = 0; i < 5; i += 1) scheduler.poke();
      await new Promise((r) => setTimeout(r, 100));
      expect(starts).toHaveLength(1);
      expect(starts[0]).toBeGreaterThanOrEqual(35);
      scheduler.now();
      await new Promise((r) => setTimeout(r, 20));
      expect(starts).toHaveLength(2);
      scheduler.poke(); // during the second refresh: one more after it
      scheduler.poke();
      (release as (() => void) | null)?.();
      await new Promise((r) => setTimeout(r, 100));
      expect(starts).toHaveLength(3);
      // then, without pokes, one after `idleMs`
      const third = starts[2] as number;
      while (starts.length < 4 && Date.now() - t0 < third + 3000) await new Promise((r) => setTimeout(r, 10));
      expect((starts[3] as number) - third).toBeGreaterThanOrEqual(290);
    } finally {
      scheduler.close();
    }
  });
});
