import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colorsFor } from "../../cli/output";
import { type DevWorker, startDevWorker } from "./dev-worker";
import { runCli as runProcess, startCli as startProcess } from "./cli-process";
import { startStreamProxy } from "./stream-proxy";

/** The people's commands (login, status, tasks, add-task, respond, logs), run as built, against the real Worker. */

const ANSI = /\x1b\[/;

let worker: DevWorker;
let home: string;
beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "switchboard-cli-home-"));
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  await worker?.stop();
  rmSync(home, { recursive: true, force: true });
});

const runCli = (args: string[], env: Record<string, string | undefined>, options?: Parameters<typeof runProcess>[3]) => runProcess(home, args, env, options);
const startCli = (args: string[], env: Record<string, string | undefined>) => startProcess(home, args, env);

async function api<T = any>(path: string, key: string, body?: unknown, method = body === undefined ? "GET" : "POST"): Promise<T> {
  const res = await fetch(`${worker.url}${path}`, { method, headers: { Authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

/** A fresh team, its operator key, and a config dir of its own (nobody logged in yet). */
async function newTeam(name = "ops") {
  const team = await api<{ team_id: string; api_key: string }>("/v1/admin/teams", worker.adminToken, { name });
  const xdg = mkdtempSync(join(home, "xdg-"));
  const env = { XDG_CONFIG_HOME: xdg, SWITCHBOARD_URL: worker.url, SWITCHBOARD_API_KEY: team.api_key };
  return { ...team, xdg, env };
}

/** A worker holding a task of its own and asking about it: the question. */
async function ask(key: string, workerId: string, text: string) {
  const task = await api<{ id: string }>("/v1/tasks", key, { title: `task for ${workerId}: ${text}`, role: "executor" });
  const claimed = await api<{ id: string }>("/v1/tasks/claim", key, { worker_id: workerId, role: "executor" });
  expect(claimed.id).toBe(task.id);
  return api<{ id: string; task_id: string }>("/v1/questions", key, { worker_id: workerId, task_id: task.id, text });
}

describe("login", () => {
  it("checks the key, stores URL and key with mode 0600, and env vars override what it stored", async () => {
    const team = await newTeam("login");
    const noKey = { XDG_CONFIG_HOME: team.xdg };

    const before = await runCli(["tasks"], noKey);
    expect(before.code).toBe(2);
    expect(before.stderr).toContain("switchboard login --url URL --key KEY");
    expect(before.stderr).toContain("SWITCHBOARD_API_KEY");

    const bad = await runCli(["login", "--url", worker.url, "--key", "sb_not_a_key"], noKey);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: Unauthorized: /m);
    expect(() => statSync(join(team.xdg, "switchboard", "config.json"))).toThrow();

    // The key from stdin, so it stays out of the shell history; --json never shows it.
    const login = await runCli(["login", "--url", `${worker.url}/`, "--key", "-", "--json"], noKey, { stdin: `${team.api_key}\n` });
    expect(login.code, login.stderr).toBe(0);
    expect(JSON.parse(login.stdout)).toMatchObject({ url: worker.url, team: { id: team.team_id, name: "login" }, operator: true });
    expect(login.stdout).not.toContain(team.api_key);
    const file = join(team.xdg, "switchboard", "config.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: worker.url, api_key: team.api_key });

    // Now the stored key is used ...
    await api("/v1/tasks", team.api_key, { title: "stored key works", role: "executor" });
    const listed = await runCli(["tasks", "--json"], noKey);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).items.map((t: { title: string }) => t.title)).toEqual(["stored key works"]);
    // ... unless SWITCHBOARD_API_KEY says otherwise (here a key that is not valid: 401, with the fix).
    const overridden = await runCli(["tasks"], { ...noKey, SWITCHBOARD_API_KEY: "sb_wrong" });
    expect(overridden.code).toBe(1);
    expect(overridden.stderr).toMatch(/^error: Unauthorized: The API key is not valid\.$/m);
    expect(overridden.stderr).toMatch(/^hint: .*SWITCHBOARD_API_KEY/m);
    // ... or SWITCHBOARD_URL points elsewhere.
    const elsewhere = await runCli(["tasks"], { ...noKey, SWITCHBOARD_URL: "http://127.0.0.1:1" });
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toMatch(/^error: could not reach http:\/\/127\.0\.0\.1:1: /m);

    // A read key is accepted (it is the team's) with a note that answering needs an operator key.
    const reader = await api<{ key: string }>("/v1/keys", team.api_key, { name: "reader", scopes: ["read"] });
    const asReader = await runCli(["login", "--key", reader.key], noKey);
    expect(asReader.code, asReader.stderr).toBe(0);
    expect(asReader.stdout).toContain("not an operator key");
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: worker.url, api_key: reader.key });

    // A config file that is not ours is bad usage that names the fix.
    writeFileSync(file, "not json");
    const broken = await runCli(["status"], noKey);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain("switchboard login");
  });
});

describe("add-task and tasks", () => {
  it("queues a task, prints its id, and lists it in a table and as JSON, filtered by status and role", async () => {
    const team = await newTeam();
    const first = await runCli(["add-task", "Fix the login bug", "--role", "executor", "--priority", "high", "--description", "## Steps\n1. look"], team.env);
    expect(first.code, first.stderr).toBe(0);
    const id = first.stdout.trim();
    expect(id).toMatch(/^task_\S+$/);

    // The description from stdin, a dependency, and --json.
    const second = await runCli(["add-task", "Document the fix", "--role", "documentation", "--description", "-", "--depends-on", id, "--json"], team.env, { stdin: "Write it **down**." });
    expect(second.code, second.stderr).toBe(0);
    const doc = JSON.parse(second.stdout);
    expect(doc).toMatchObject({ title: "Document the fix", role: "documentation", priority: "normal", depends_on: [id], description: "Write it **down**.", status: "pending" });

    const table = await runCli(["tasks"], team.env);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/│ id\s+│ title\s+│ role\s+│ priority │ status\s+│ attempts │ worker │ updated/);
    expect(table.stdout).toMatch(new RegExp(`│ ${id}\\s+│ Fix the login bug\\s+│ executor\\s+│ high\\s+│ pending\\s+│ 0/3\\s+│ -\\s+│ \\d+s ago`));
    expect(table.stdout).toContain("Document the fix");
    expect(table.stdout).not.toMatch(ANSI);

    const json = JSON.parse((await runCli(["tasks", "--json", "--role", "documentation"], team.env)).stdout);
    expect(json).toEqual({ items: [expect.objectContaining({ id: doc.id })], next_cursor: null });
    const claimed = await runCli(["tasks", "--status", "claimed"], team.env);
    expect(claimed.code).toBe(0);
    expect(claimed.stdout).toContain("no tasks claimed");

    // --limit pages: one shown, the rest announced on stderr.
    const limited = await runCli(["tasks", "--limit", "1", "--json"], team.env);
    expect(JSON.parse(limited.stdout).items).toHaveLength(1);
    expect(JSON.parse(limited.stdout).next_cursor).toEqual(expect.any(String));

    // An unknown dependency is the API's 404, in one line.
    const missing = await runCli(["add-task", "x", "--role", "executor", "--depends-on", "task_nope"], team.env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: Not found: depends_on names tasks this team does not have: task_nope\./m);
  });
});

describe("status", () => {
  it("shows workers, queue counts and open questions, as a table and as JSON", async () => {
    const team = await newTeam();
    const empty = await runCli(["status"], team.env);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toContain("no workers yet");

    await api("/v1/workers/exec-alpha/heartbeat", team.api_key, { role: "executor", status: "idle" });
    const question = await ask(team.api_key, "exec-alpha", "Postgres or **SQLite**?\nSay why.");
    await api("/v1/tasks", team.api_key, { title: "waits", role: "planner" });

    const json = await runCli(["status", "--json"], team.env);
    expect(json.code, json.stderr).toBe(0);
    const s = JSON.parse(json.stdout);
    expect(s.workers).toEqual([expect.objectContaining({ id: "exec-alpha", role: "executor", status: "waiting", current_task: question.task_id, tasks_completed: 0 })]);
    expect(s.queue).toEqual({ counts: { pending: 1, claimed: 0, running: 0, completed: 0, failed: 0, cancelled: 0, blocked: 0, waiting_input: 1 }, total: 2 });
    expect(s.questions).toEqual([expect.objectContaining({ id: question.id, worker_id: "exec-alpha", task_id: question.task_id, status: "open" })]);

    const table = await runCli(["status"], team.env);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/│ worker\s+│ role\s+│ status\s+│ current task\s+│ completed │ last seen │/);
    expect(table.stdout).toMatch(new RegExp(`│ exec-alpha │ executor │ waiting │ ${question.task_id} │ 0\\s+│ \\d+s ago`));
    expect(table.stdout).toMatch(/│ pending │ blocked │ claimed │ running │ waiting_input │ completed │ failed │ cancelled │/);
    expect(table.stdout).toMatch(/│ 1\s+│ 0\s+│ 0\s+│ 0\s+│ 1\s+│ 0\s+│ 0\s+│ 0\s+│/);
    expect(table.stdout).toContain(`│ ${question.id} │ exec-alpha │ ${question.task_id} │`);
    expect(table.stdout).toContain("Postgres or **SQLite**?…");
    expect(table.stdout).not.toMatch(ANSI);
  });

  it("--watch --json follows the team stream: each change shows at once, not at the next poll; Ctrl-C exits 0", async () => {
    const team = await newTeam();
    // Polling (a server without the stream) would read every 10 minutes: only the stream can be this quick.
    const cli = startCli(["status", "--watch", "--json", "--interval", "600"], team.env);
    // Whole lines only: the last may still be arriving.
    const snapshots = () => cli.out.stdout.split("\n").slice(0, -1).map((l) => JSON.parse(l));
    const latest = () => snapshots().at(-1);
    const soon = (what: string, check: (s: any) => boolean) => cli.waitFor(() => snapshots().length > 0 && check(latest()), 5000, what);
    await cli.waitFor((o) => o.stdout.includes("\n"), 15_000, "first snapshot");
    expect(latest()).toMatchObject({ workers: [], queue: { total: 0 }, questions: [], truncated: { workers: false, questions: false } });

    const created = await api<{ id: string }>("/v1/tasks", team.api_key, { title: "live from the stream", role: "planner" });
    await soon("the new task", (s) => s.queue.counts.pending === 1 && s.queue.total === 1);

    await api("/v1/workers/exec-live/heartbeat", team.api_key, { role: "executor", status: "idle" });
    await soon("the new worker", (s) => s.workers.some((w: any) => w.id === "exec-live" && w.status === "idle"));

    const question = await ask(team.api_key, "exec-live", "Which port?");
    await soon("the question", (s) => s.questions.some((q: any) => q.id === question.id) && s.queue.counts.waiting_input === 1 && s.workers[0].status === "waiting");

    // Every line has the shape of `status --json`.
    for (const s of snapshots()) expect(Object.keys(s).sort()).toEqual(["at", "questions", "queue", "truncated", "workers"]);
    expect(snapshots().length).toBeLessThan(20);
    expect(created.id).toMatch(/^task_/);

    cli.child.kill("SIGINT");
    const run = await cli.exited;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe("");

    // A key the stream refuses will not heal by reconnecting: exit 1 with the fix, as `status` does.
    const refused = await runCli(["status", "--watch"], { ...team.env, SWITCHBOARD_API_KEY: "sb_wrong" });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: Unauthorized: /m);
    expect(refused.stderr).toMatch(/^hint: .*SWITCHBOARD_API_KEY/m);
  }, 45_000);

  it("--watch lists the recent events, and resumes the stream with Last-Event-ID when it drops", async () => {
    const team = await newTeam();
    const proxy = await startStreamProxy(worker.url);
    try {
      const cli = startCli(["status", "--watch", "--interval", "600"], { ...team.env, SWITCHBOARD_URL: proxy.url });
      await cli.waitFor((o) => o.stdout.includes("Recent") && o.stdout.includes("no events since"), 15_000, "first render");
      expect(cli.out.stdout).toContain(`${proxy.url} · live · Ctrl-C to stop`);

      await api("/v1/tasks", team.api_key, { title: "before the drop", role: "executor" });
      await cli.waitFor((o) => /\d\d:\d\d:\d\d task\.created {9}before the drop \(task_\S+\)/.test(o.stdout), 5000, "the event in Recent");

      // The stream drops, and the first try to reopen it meets a 503: reconnecting, with backoff.
      proxy.mode = "unavailable";
      proxy.dropStreams();
      await cli.waitFor((o) => o.stderr.includes("reconnecting…"), 3000, "reconnecting");
      await api("/v1/tasks", team.api_key, { title: "while it was down", role: "executor" });
      await cli.waitFor(() => proxy.streamRequests.some((r) => r.status === 503), 5000, "a refused reconnect");
      proxy.mode = "pass";
      await cli.waitFor((o) => o.stdout.includes("while it was down"), 15_000, "the event sent while the stream was down");

      // Only a replay after Last-Event-ID brings the event itself (a new stream starts with a snapshot).
      const [first, ...later] = proxy.streamRequests;
      expect(first).toEqual({ lastEventId: null, status: 200 });
      expect(later.map((r) => r.status)).toEqual([503, 200]);
      expect(later[0]?.lastEventId).toMatch(/^\d+$/);
      expect(later[1]?.lastEventId).toBe(later[0]?.lastEventId);
      expect(cli.out.stderr).toMatch(/reconnecting… the (stream ended|connection was lost( \(\w+\))?) \(try 1 in 2s\)/);
      expect(cli.out.stderr).toMatch(/reconnecting… Service unavailable \(try 2 in 4s\)/);
      expect(cli.out.stderr).toContain("live again");
      const last = cli.out.stdout.slice(cli.out.stdout.lastIndexOf(proxy.url));
      expect(last).toMatch(/Queue \(2 tasks\)/);
      expect(last.match(/task\.created/g)).toHaveLength(2);
      expect(last).not.toMatch(ANSI);

      cli.child.kill("SIGINT");
      const run = await cli.exited;
      expect(run.code, run.stderr).toBe(0);
    } finally {
      await proxy.close();
    }
  }, 45_000);

  it("--watch polls a server without the team stream (404), every --interval, until Ctrl-C", async () => {
    const team = await newTeam();
    const proxy = await startStreamProxy(worker.url);
    proxy.mode = "no-stream";
    try {
      const started = Date.now();
      const cli = startCli(["status", "--watch", "--interval", "0.5"], { ...team.env, SWITCHBOARD_URL: proxy.url });
      await cli.waitFor((o) => o.stdout.split("Open questions").length - 1 >= 3, 15_000, "three renders");
      expect(Date.now() - started).toBeGreaterThanOrEqual(950);
      cli.child.kill("SIGINT");
      const run = await cli.exited;
      expect(run.code, run.stderr).toBe(0);
      expect(proxy.streamRequests).toEqual([{ lastEventId: null, status: 404 }]);
      expect(run.stderr).toBe("no team stream: polling every 0.5s (Not found: No route GET /v1/stream.)\n");
      // Not a terminal: no screen clearing, no colour; each refresh follows the last; no events to list.
      expect(run.stdout).not.toMatch(ANSI);
      expect(run.stdout).toContain("every 0.5s · Ctrl-C to stop");
      expect(run.stdout).not.toContain("Recent");
    } finally {
      await proxy.close();
    }
  }, 30_000);
});

describe("respond", () => {
  it("answers by question id and by worker id; refuses what it cannot pin down", async () => {
    const team = await newTeam();
    const q1 = await ask(team.api_key, "exec-one", "Which database?");
    const byId = await runCli(["respond", q1.id, "SQLite, on D1."], team.env);
    expect(byId.code, byId.stderr).toBe(0);
    expect(byId.stdout).toContain(`Answered ${q1.id} from exec-one`);
    expect(await api(`/v1/questions/${q1.id}`, team.api_key)).toMatchObject({ status: "answered", answer: "SQLite, on D1." });
    // Answered once: again is the API's 409, exit 1.
    const again = await runCli(["respond", q1.id, "again"], team.env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: Conflict: The question was already answered/m);

    const q2 = await ask(team.api_key, "exec-two", "Tabs or spaces?");
    const byWorker = await runCli(["respond", "exec-two", "-", "--json"], team.env, { stdin: "Spaces." });
    expect(byWorker.code, byWorker.stderr).toBe(0);
    expect(JSON.parse(byWorker.stdout)).toMatchObject({ id: q2.id, status: "answered", answer: "Spaces." });

    const none = await runCli(["respond", "exec-two", "more?"], team.env);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("error: no open question from worker exec-two");

    // Two open questions from one worker: it names them and asks for an id.
    const a = await ask(team.api_key, "exec-three", "First?");
    const b = await ask(team.api_key, "exec-three", "Second?");
    const several = await runCli(["respond", "exec-three", "yes"], team.env);
    expect(several.code).toBe(1);
    expect(several.stderr).toContain("worker exec-three has 2 open questions");
    expect(several.stderr).toContain(a.id);
    expect(several.stderr).toContain(b.id);
    expect(several.stderr).toMatch(/hint: answer one by its id: switchboard respond q_/);

    // Worker ids are the workers' own: one may start with `q_` like a question id, and is still answered.
    const q4 = await ask(team.api_key, "q_worker", "SQLite or Postgres?");
    const qWorker = await runCli(["respond", "q_worker", "use sqlite"], team.env);
    expect(qWorker.code, qWorker.stderr).toBe(0);
    expect(qWorker.stdout).toContain(`Answered ${q4.id} from q_worker`);
    expect(await api(`/v1/questions/${q4.id}`, team.api_key)).toMatchObject({ status: "answered", answer: "use sqlite" });

    // Neither a question nor a worker with an open question: the error says both were looked for.
    const unknown = await runCli(["respond", "q_nope", "hello"], team.env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: no question q_nope, and no open question from a worker q_nope$/m);

    // A read key may not answer: 403, and the hint names the scope.
    const reader = await api<{ key: string }>("/v1/keys", team.api_key, { name: "reader", scopes: ["read"] });
    const refused = await runCli(["respond", a.id, "yes"], { ...team.env, SWITCHBOARD_API_KEY: reader.key });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: Forbidden: /m);
    expect(refused.stderr).toMatch(/^hint: the key from SWITCHBOARD_API_KEY lacks the operator scope/m);
  });
});

describe("usage and output conventions", () => {
  it("exits 2 for bad usage, with the problem and a pointer to --help", async () => {
    const team = await newTeam();
    const cases: string[][] = [
      [],
      ["nope"],
      ["tasks", "--status", "done"],
      ["tasks", "--limit", "0"],
      ["tasks", "--role", "Not A Role"],
      ["add-task", "no role"],
      ["add-task", "t", "--role", "executor", "--priority", "urgent"],
      ["add-task", "t", "--role", "executor", "--description", "d", "--description-file", "f"],
      ["respond", "q_1"],
      ["logs"],
      ["status", "--bogus"],
      ["status", "--watch", "--interval", "0"],
      ["login"],
      ["login", "--key", "k", "--url", "not a url"],
    ];
    for (const args of cases) {
      const run = await runCli(args, team.env);
      expect(run.code, `switchboard ${args.join(" ")}: ${run.stderr}`).toBe(2);
      expect(run.stderr, args.join(" ")).toMatch(/error|Usage/);
    }
    const help = await runCli(["tasks", "--help"], team.env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--status <status>");
  });

  it("colours only a terminal, and never with NO_COLOR", () => {
    expect(colorsFor(true, {}).red("x")).toMatch(ANSI);
    expect(colorsFor(true, { NO_COLOR: "1" }).red("x")).toBe("x");
    expect(colorsFor(true, { TERM: "dumb" }).red("x")).toBe("x");
    expect(colorsFor(false, { CI: "true" }).red("x")).toBe("x");
  });
});

describe("logs", () => {
  const post = (key: string, wid: string, taskId: string | null, lines: string[]) => api(`/v1/workers/${wid}/logs`, key, { ...(taskId ? { task_id: taskId } : {}), lines });

  it("prints a worker's last lines, a worker's lines about one task, a task's from every worker, and JSON lines", async () => {
    const team = await newTeam();
    const t1 = await api<{ id: string }>("/v1/tasks", team.api_key, { title: "one", role: "executor" });
    const t2 = await api<{ id: string }>("/v1/tasks", team.api_key, { title: "two", role: "executor" });
    await post(team.api_key, "exec-alpha", t1.id, ["cloning the repository"]);
    await post(team.api_key, "exec-beta", t1.id, ["reviewing alpha's work"]);
    await post(team.api_key, "exec-alpha", t2.id, ["running the tests", "3 failed"]);

    const tail = await runCli(["logs", "exec-alpha", "--lines", "2"], team.env);
    expect(tail.code, tail.stderr).toBe(0);
    expect(tail.stdout).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z ${t2.id} running the tests\n\\S+ ${t2.id} 3 failed\n$`));
    expect(tail.stdout).not.toMatch(ANSI);

    const narrowed = await runCli(["logs", "exec-alpha", "--task", t1.id], team.env);
    expect(narrowed.stdout.trim().split("\n")).toEqual([expect.stringMatching(new RegExp(` ${t1.id} cloning the repository$`))]);

    const byTask = await runCli(["logs", "--task", t1.id, "--json"], team.env);
    expect(byTask.code, byTask.stderr).toBe(0);
    const lines = byTask.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.worker_id, l.task_id, l.text])).toEqual([
      ["exec-alpha", t1.id, "cloning the repository"],
      ["exec-beta", t1.id, "reviewing alpha's work"],
    ]);
    expect(lines[0].at).toEqual(expect.any(String));

    const ghost = await runCli(["logs", "ghost"], team.env);
    expect(ghost.code).toBe(1);
    expect(ghost.stderr).toMatch(/^error: Not found: No worker ghost\.$/m);
    const refused = await runCli(["logs", "exec-alpha"], { ...team.env, SWITCHBOARD_API_KEY: "sb_wrong" });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^hint: .*switchboard login/m);
  });

  it("--follow prints the lines written after the cursor until Ctrl-C, then exits 0", async () => {
    const team = await newTeam();
    await post(team.api_key, "exec-alpha", null, ["cloning the repository", "running the tests"]);
    let added = false;
    const run = await runCli(["logs", "exec-alpha", "--follow"], team.env, {
      onStdout: (out, child) => {
        if (!added && out.includes("running the tests")) {
          added = true;
          void post(team.api_key, "exec-alpha", null, ["a new line"]);
        }
        if (out.includes("a new line") && !child.killed) child.kill("SIGINT");
      },
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.split("\n").filter(Boolean).map((l) => l.split(" ").slice(1).join(" "))).toEqual(["- cloning the repository", "- running the tests", "- a new line"]);
  }, 20_000);
});
