import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerApi } from "../../cli/worker/api";
import { fleetMembers } from "../../cli/worker/fleet";
import { createPlannedTasks } from "../../cli/worker/planner";
import { type DevWorker, eventually, getJson, startDevWorker, newTeamOn } from "./dev-worker";
import { alive } from "./runner-helpers";

const CLI = join(process.cwd(), "cli", "dist", "switchboard.mjs");
const AGENT = join(process.cwd(), "test", "node", "fixtures", "scripted-agent.sh");
/** Fast intervals, so each path takes a second or two. */
const FAST = ["--poll-interval", "0.2", "--lease-heartbeat", "0.4", "--question-poll", "0.2"];

let worker: DevWorker;
const dirs: string[] = [];
/** Processes an agent left behind, killed after the tests whatever they found. */
const leftovers: number[] = [];
beforeAll(async () => {
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  for (const pid of leftovers) if (alive(pid)) process.kill(pid, "SIGKILL");
  await worker?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "switchboard-daemon-"));
  dirs.push(d);
  return d;
}

const newTeam = () => newTeamOn(worker, "daemon");

interface Cli {
  child: ChildProcess;
  output: () => string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function cli(args: string[], key: string, options: { cwd?: string; env?: Record<string, string> } = {}): Cli {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd, env: { ...process.env, SWITCHBOARD_URL: worker.url, SWITCHBOARD_API_KEY: key, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  return { child, output: () => output, done };
}

function daemon(key: string, dir: string, extra: string[], role = "executor", name = "exec-alpha"): Cli {
  return cli(["worker", "--role", role, "--name", name, "--dir", dir, ...FAST, ...extra, "--", "bash", AGENT], key);
}

async function until(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("switchboard worker", () => {
  it("writes the task file, runs the agent there with the task, completes with the result file and the JSON report", async () => {
    const { key, call } = await newTeam();
    const dir = tempDir();
    const first = await call("POST", "/v1/tasks", { title: "complete the thing", description: "Do **it**.", role: "executor", priority: "high" });
    const second = await call("POST", "/v1/tasks", { title: "stdout only", role: "executor" });
    const run = daemon(key, dir, ["--max-tasks", "2"]);
    expect((await run.done).code).toBe(0);

    const done = await call("GET", `/v1/tasks/${first.id}`);
    expect(done).toMatchObject({ status: "completed", worker_id: "exec-alpha", cost_usd: 0.25, tokens: 160, duration_ms: 1234 });
    expect(done.result).toContain("# Done: complete the thing");
    expect(done.result).toContain(`cwd=${dir}`);
    expect(done.result).toContain(`task file: ${join(dir, "tasks", "current_task.md")}`);
    expect(done.result).toContain("first line of the task file: # Task: complete the thing");
    expect(done.result).toContain("first line on stdin: # Task: complete the thing");
    // The task file is kept after the task, with the description and how to report.
    const kept = readFileSync(join(dir, "tasks", "done", `${first.id}.md`), "utf8");
    expect(kept).toContain("Do **it**.");
    expect(kept).toContain(`outputs/${first.id}_result.md`);

    // No result file and no JSON: the tail of stdout, and the measured duration.
    const plain = await call("GET", `/v1/tasks/${second.id}`);
    expect(plain.status).toBe("completed");
    expect(plain.result).toContain("the last words on stdout");
    expect(plain.cost_usd).toBe(0);
    expect(plain.duration_ms).toBeGreaterThan(0);

    // The agent's stdout and stderr, and the worker's own lines, are in the task's logs by the time it completes.
    const logs = await call("GET", `/v1/tasks/${first.id}/logs?lines=100`);
    const texts = logs.lines.map((l: { text: string }) => l.text);
    expect(logs.lines.every((l: { worker_id: string; task_id: string }) => l.worker_id === "exec-alpha" && l.task_id === first.id)).toBe(true);
    expect(texts).toEqual(expect.arrayContaining([`agent exec-alpha (executor) on ${first.id}: complete the thing`, "a line on stderr", `[switchboard] claimed ${first.id} "complete the thing" (attempt 1 of 3)`, `[switchboard] completing ${first.id}`]));
    expect(texts.some((t: string) => t.includes('"total_cost_usd":0.25'))).toBe(true);
    expect((await call("GET", `/v1/tasks/${second.id}/logs?lines=100`)).lines.map((l: { text: string }) => l.text)).toContain("the last words on stdout");

    expect(await call("GET", "/v1/workers/exec-alpha")).toMatchObject({ role: "executor", status: "idle", tasks_completed: 2, current_task: null });
    expect(run.output()).toContain("[switchboard] worker exec-alpha stopping: 2 task(s), 2 completed, 0 failed, 0 lost");
  });

  it("fails the task with the exit code and the end of stderr", async () => {
    const { key, call } = await newTeam();
    const task = await call("POST", "/v1/tasks", { title: "fail hard", role: "executor", max_attempts: 1 });
    const run = daemon(key, tempDir(), ["--max-tasks", "1"]);
    // --max-tasks that completed none of its tasks exits 1.
    expect((await run.done).code).toBe(1);
    const failed = await call("GET", `/v1/tasks/${task.id}`);
    expect(failed.status).toBe("failed");
    expect(failed.result).toContain("The agent exited with code 3.");
    expect(failed.result).toContain("something broke");
    expect(failed.duration_ms).toBeGreaterThan(0);
  });

  it("asks the agent's question, waits, writes the answer and runs the agent again", async () => {
    const { key, call } = await newTeam();
    const dir = tempDir();
    const task = await call("POST", "/v1/tasks", { title: "ask about the database", role: "executor" });
    const run = daemon(key, dir, ["--max-tasks", "1"]);
    const open = await eventually(() => call("GET", "/v1/questions?status=open"), (l) => l.items.length === 1, 20_000);
    const question = open.items[0];
    expect(question).toMatchObject({ task_id: task.id, worker_id: "exec-alpha", text: "Postgres or **SQLite**?" });
    expect((await call("GET", `/v1/tasks/${task.id}`)).status).toBe("waiting_input");
    await eventually(() => call("GET", "/v1/workers/exec-alpha"), (w) => w.status === "waiting");
    // The lease heartbeats go on while the task waits.
    const before = (await call("GET", `/v1/tasks/${task.id}`)).lease_expires_at;
    await eventually(() => call("GET", `/v1/tasks/${task.id}`), (t) => t.lease_expires_at > before);

    await call("POST", `/v1/questions/${question.id}/answer`, { text: "SQLite, on D1." });
    expect((await run.done).code).toBe(0);
    const done = await call("GET", `/v1/tasks/${task.id}`);
    expect(done.status).toBe("completed");
    expect(done.result).toContain("The person said: SQLite, on D1.");
    expect(done.result).toContain("the prompt carried the answer");
    expect(done.cost_usd).toBe(0.75); // both runs
    expect(readFileSync(join(dir, "outputs", `${task.id}_question_1.md`), "utf8")).toContain("SQLite");
    expect(existsSync(join(dir, "outputs", `${task.id}_question.md`))).toBe(false);
    expect(readFileSync(join(dir, "outputs", `${task.id}_answer.md`), "utf8")).toBe("SQLite, on D1.");
  });

  it("turns a planner's task specs into tasks with their dependencies, once", async () => {
    const { key, call } = await newTeam();
    const dir = tempDir();
    const plan = await call("POST", "/v1/tasks", { title: "plan the users feature", role: "planner" });
    const run = daemon(key, dir, ["--max-tasks", "1"], "planner", "planner-1");
    expect((await run.done).code).toBe(0);

    const done = await call("GET", `/v1/tasks/${plan.id}`);
    expect(done.status).toBe("completed");
    expect(done.result).toContain("planned two tasks");
    expect(done.result).toContain("## Tasks created");
    const [schema] = (await call("GET", "/v1/tasks?role=executor")).items;
    const [docs] = (await call("GET", "/v1/tasks?role=documentation")).items;
    expect(schema).toMatchObject({ title: "Create the users table", priority: "high", source: "planner", depends_on: [], status: "pending", idempotency_key: `planner:${plan.id}:01-schema.md` });
    expect(schema.description).toContain("A users table with email and password hash.");
    expect(schema.description).toContain("- [ ] migration applies");
    expect(docs).toMatchObject({ title: "Document the users table", priority: "low", source: "planner", depends_on: [schema.id] });
    const specs = join(dir, "outputs", "tasks");
    expect(readdirSync(join(specs, "done")).sort()).toEqual(["01-schema.md", "02-docs.md"]);
    expect(readdirSync(specs).filter((f) => f.endsWith(".md"))).toEqual([]);

    // Processing the same files for the same task again creates nothing new.
    for (const f of ["01-schema.md", "02-docs.md"]) cpSync(join(specs, "done", f), join(specs, f));
    const again = await createPlannedTasks(new WorkerApi({ baseUrl: worker.url, apiKey: key }), specs, plan.id);
    expect(again.created.map((c) => [c.id, c.existed])).toEqual([
      [schema.id, true],
      [docs.id, true],
    ]);
    expect((await call("GET", "/v1/tasks?limit=200")).items).toHaveLength(3);
  });

  it("a chatty agent (200,000 lines) completes, with lines dropped and said so, and its task's log ends with the worker's own lines when it completes", async () => {
    const { key, call } = await newTeam();
    const task = await call("POST", "/v1/tasks", { title: "chatty agent", role: "executor" });
    const run = daemon(key, tempDir(), ["--max-tasks", "1"]);
    expect((await run.done).code).toBe(0);
    const done = await call("GET", `/v1/tasks/${task.id}`);
    expect(done.status).toBe("completed");
    expect(run.output()).toContain("log lines are waiting to be sent; dropping the oldest");
    const lines: Array<{ at: string; text: string }> = (await call("GET", `/v1/tasks/${task.id}/logs?lines=5000`)).lines;
    expect(lines.slice(-3).map((l) => l.text)).toEqual(["chatty line", `[switchboard] completing ${task.id}`, `[switchboard] ${task.id} is completed`]);
    // Stored before the task completed (the worker's last lines once came after, or never on exit).
    expect(Date.parse((lines.at(-2) as { at: string }).at)).toBeLessThanOrEqual(Date.parse(done.updated_at));
  });

  it("completes the attempt when the agent exits, not when the children it left let go of its output: they are stopped, and what it wrote is in the task's log", async () => {
    const { key, call } = await newTeam();
    const task = await call("POST", "/v1/tasks", { title: "leave children behind", role: "executor" });
    const run = daemon(key, tempDir(), ["--max-tasks", "1"]);
    await until(() => /left \d+ \d+/.test(run.output()));
    const children = (/left (\d+) (\d+)/.exec(run.output()) ?? []).slice(1).map(Number);
    leftovers.push(...children);
    // Waiting for the pipes to close would wait for the children's 120 s: past the test's timeout.
    expect((await run.done).code).toBe(0);
    expect(await call("GET", `/v1/tasks/${task.id}`)).toMatchObject({ status: "completed", result: "left two children\n" });
    const texts = (await call("GET", `/v1/tasks/${task.id}/logs?lines=100`)).lines.map((l: { text: string }) => l.text);
    expect(texts).toContain(`left ${children.join(" ")}`);
    for (const pid of children) expect(alive(pid), `child ${pid}`).toBe(false);
  });

  it("reads at most what the API takes of a huge result or question file, says it was cut, and fails an unreadable one", async () => {
    const { key, call } = await newTeam();
    const huge = await call("POST", "/v1/tasks", { title: "huge-result", role: "executor", priority: "critical" });
    const unreadable = await call("POST", "/v1/tasks", { title: "unreadable result", role: "executor", priority: "high", max_attempts: 1 });
    const asking = await call("POST", "/v1/tasks", { title: "huge-question", role: "executor" });
    const run = daemon(key, tempDir(), ["--max-tasks", "3"]);
    const open = await eventually(() => call("GET", "/v1/questions?status=open"), (l) => l.items.length === 1, 20_000);
    const text: string = open.items[0].text;
    expect(text.length).toBeLessThanOrEqual(20_000);
    expect(text).toMatch(/^Which of these\?\nqqq/);
    expect(text).toMatch(/\[… cut at 20,000 characters: the file is 629,145,600 bytes\]$/);
    await call("POST", `/v1/questions/${open.items[0].id}/answer`, { text: "the first" });
    expect((await run.done).code, run.output().slice(-2000)).toBe(0);

    const done = await call("GET", `/v1/tasks/${huge.id}`);
    expect(done.status, run.output().slice(-3000)).toBe("completed");
    expect(done.result.length).toBeLessThanOrEqual(200_000);
    // The rest of the file is NULs (truncate -s): 6 bytes each in JSON, so cut again to fit the 1 MiB body.
    expect(done.result).toMatch(/^the start of a huge result\n\0+\n\n\[… \d+ characters cut to fit the API's body limit\]$/);
    const failed = await call("GET", `/v1/tasks/${unreadable.id}`);
    expect(failed.status).toBe("failed");
    expect(failed.result).toMatch(/^could not read the agent's result, outputs\/task_\w+_result\.md: .* is not a regular file/);
    expect(await call("GET", `/v1/tasks/${asking.id}`)).toMatchObject({ status: "completed", result: "answered: the first\n" });
  });

  it("stops after --max-tasks", async () => {
    const { key, call } = await newTeam();
    for (const n of [1, 2, 3]) await call("POST", "/v1/tasks", { title: `complete number ${n}`, role: "executor" });
    const run = daemon(key, tempDir(), ["--max-tasks", "2"]);
    expect((await run.done).code).toBe(0);
    const statuses = (await call("GET", "/v1/tasks")).items.map((t: { status: string }) => t.status).sort();
    expect(statuses).toEqual(["completed", "completed", "pending"]);
  });

  it("on SIGTERM lets the running agent finish within the grace, then claims nothing more", async () => {
    const { key, call } = await newTeam();
    const slow = await call("POST", "/v1/tasks", { title: "slow but sure", role: "executor", priority: "high" });
    const next = await call("POST", "/v1/tasks", { title: "complete later", role: "executor" });
    const run = daemon(key, tempDir(), ["--grace", "20"]);
    await until(() => run.output().includes("slow start"));
    run.child.kill("SIGTERM");
    expect((await run.done).code).toBe(0);
    expect(await call("GET", `/v1/tasks/${slow.id}`)).toMatchObject({ status: "completed", result: "slow done\n" });
    expect((await call("GET", `/v1/tasks/${next.id}`)).status).toBe("pending");
  });

  it("on SIGTERM kills an agent that outlives the grace and releases its task: pending at once, its attempt not used up", async () => {
    const { key, call } = await newTeam();
    const dir = tempDir();
    // One attempt: failing it as stopped would have failed the task for good.
    const task = await call("POST", "/v1/tasks", { title: "sleep forever", role: "executor", max_attempts: 1 });
    const run = daemon(key, dir, ["--grace", "0.5"]);
    await until(() => run.output().includes("sleeping"));
    const pid = Number(readFileSync(join(dir, "outputs", "agent.pid"), "utf8"));
    expect(alive(pid)).toBe(true);
    // The first lease heartbeat went out as the agent started.
    expect((await call("GET", `/v1/tasks/${task.id}`)).status).toBe("running");
    run.child.kill("SIGTERM");
    expect((await run.done).code).toBe(0);
    expect(alive(pid)).toBe(false);
    const after = await call("GET", `/v1/tasks/${task.id}`);
    expect(after).toMatchObject({ status: "pending", attempts: 0, lease_expires_at: null, result: null });
    expect(Date.parse(after.available_at)).toBeLessThanOrEqual(Date.now());
    expect(run.output()).toContain(`releasing ${task.id}: worker stopped: exec-alpha was stopped`);
    expect(run.output()).toContain("0 failed, 0 lost, 1 released");
    expect(await call("GET", "/v1/workers/exec-alpha")).toMatchObject({ status: "idle", current_task: null });
  });

  it("a second SIGTERM kills an agent that ignores SIGTERM at once, whatever grace is left, and releases its task", async () => {
    const { key, call } = await newTeam();
    const dir = tempDir();
    const task = await call("POST", "/v1/tasks", { title: "stubborn", role: "executor" });
    // Ignores SIGTERM, as an agent busy with something may.
    const agent = join(dir, "..", `stubborn-${Date.now()}.sh`);
    writeFileSync(agent, `trap 'echo got TERM, ignoring' TERM\necho "pid $$"\nwhile true; do sleep 0.1; done\n`);
    const run = cli(["worker", "--role", "executor", "--name", "exec-stub", "--dir", dir, ...FAST, "--grace", "60", "--", "bash", agent], key);
    await until(() => /pid \d+/.test(run.output())).catch((e) => { throw new Error(`${e.message}: ${run.output()}`); });
    const pid = Number(/pid (\d+)/.exec(run.output())?.[1]);
    run.child.kill("SIGTERM");
    // The first lets the agent finish within the grace: it is not signalled yet.
    await until(() => run.output().includes("stopping: the agent has 60 s to finish"));
    const second = Date.now();
    run.child.kill("SIGTERM");
    expect((await run.done).code).toBe(0);
    // Well under the 10 s a SIGTERM'd agent gets before SIGKILL, and the 60 s grace.
    expect(Date.now() - second).toBeLessThan(5_000);
    expect(alive(pid)).toBe(false);
    expect(run.output()).toContain(`releasing ${task.id}: worker stopped: exec-stub was told twice to stop, and its agent was killed at once`);
    expect(await call("GET", `/v1/tasks/${task.id}`)).toMatchObject({ status: "pending", attempts: 0 });
  });

  it("on SIGTERM while waiting for an answer releases the task and its question is withdrawn; an answer file an earlier attempt left is set aside", async () => {
    const { key, call } = await newTeam();
    const dir = tempDir();
    const task = await call("POST", "/v1/tasks", { title: "ask again", role: "executor" });
    // As an earlier attempt on this task would have left it: the agent must not take it for an answer.
    mkdirSync(join(dir, "outputs"), { recursive: true });
    writeFileSync(join(dir, "outputs", `${task.id}_answer.md`), "an answer to an earlier attempt");
    const run = daemon(key, dir, []);
    const open = await eventually(() => call("GET", "/v1/questions?status=open"), (l) => l.items.length === 1, 20_000);
    expect(readFileSync(join(dir, "outputs", `${task.id}_answer.md.prev`), "utf8")).toBe("an answer to an earlier attempt");
    run.child.kill("SIGTERM");
    expect((await run.done).code).toBe(0);
    expect(await call("GET", `/v1/tasks/${task.id}`)).toMatchObject({ status: "pending", attempts: 0 });
    expect(await call("GET", `/v1/questions/${open.items[0].id}`)).toMatchObject({ status: "withdrawn" });
    expect(run.output()).toContain("was stopped while waiting for an answer");
  });

  it("kills the agent and moves on when the lease is lost (the task was cancelled)", async () => {
    const { key, call } = await newTeam();
    const dir = tempDir();
    const task = await call("POST", "/v1/tasks", { title: "sleep until cancelled", role: "executor" });
    const run = daemon(key, dir, ["--max-tasks", "1"]);
    await until(() => run.output().includes("sleeping"));
    const pid = Number(readFileSync(join(dir, "outputs", "agent.pid"), "utf8"));
    await call("POST", `/v1/tasks/${task.id}/cancel`);
    expect((await run.done).code).toBe(1);
    expect(alive(pid)).toBe(false);
    expect(run.output()).toMatch(new RegExp(`lost the lease on ${task.id}: [^\\n]*[^.;]; moving on without a result`));
    expect(run.output()).toContain("0 completed, 0 failed, 1 lost");
    expect((await call("GET", `/v1/tasks/${task.id}`)).status).toBe("cancelled");
  });
});

describe("switchboard start / stop", () => {
  /** Fleet workers are named after the machine (its host name's first label), like `switchboard worker`'s default. */
  const HOST = hostname().split(".")[0]?.replace(/[^A-Za-z0-9_-]/g, "-") as string;

  it("names the fleet's workers after this host, or a --suffix, so two machines' fleets do not collide", () => {
    expect(HOST).not.toBe("");
    expect(fleetMembers(2, true).map((m) => `${m.name}:${m.role}`)).toEqual([`planner-1-${HOST}:planner`, `exec-1-${HOST}:executor`, `exec-2-${HOST}:executor`, `docs-1-${HOST}:documentation`]);
    expect(fleetMembers(1, false, "box2").map((m) => m.name)).toEqual(["exec-1-box2", "docs-1-box2"]);
    expect(fleetMembers(1, false, "").map((m) => m.name)).toEqual(["exec-1", "docs-1"]);
  });

  it("refuses a --suffix that is not a name part", async () => {
    const bad = cli(["start", "--suffix", "a.b", "--dir", tempDir()], "unused", { env: { SWITCHBOARD_TMUX: "0" } });
    expect((await bad.done).code).toBe(2);
    expect(bad.output()).toContain("--suffix: up to 64 letters, digits, '_' or '-'");
  });

  const fleetConfig = (cwd: string) => writeFileSync(join(cwd, "switchboard.fleet.json"), JSON.stringify({ commands: { executor: `bash '${AGENT}'` }, default: ["bash", AGENT] }));

  async function runFleet(env: Record<string, string>, check: (root: string, key: string) => Promise<void>) {
    const { key, call } = await newTeam();
    const cwd = tempDir();
    fleetConfig(cwd);
    const started = cli(["start", "--executors", "1", "--dir", "fleet", "--poll-interval", "0.2", "--grace", "1"], key, { cwd, env });
    expect((await started.done).code, started.output()).toBe(0);
    const root = join(cwd, "fleet");
    try {
      const workers = await eventually(() => call("GET", "/v1/workers"), (l) => l.items.length === 3, 20_000);
      expect(workers.items.map((w: { id: string; role: string }) => `${w.id}:${w.role}`)).toEqual([`docs-1-${HOST}:documentation`, `exec-1-${HOST}:executor`, `planner-1-${HOST}:planner`]);
      const task = await call("POST", "/v1/tasks", { title: "complete by the fleet", role: "executor" });
      const done = await eventually(() => call("GET", `/v1/tasks/${task.id}`), (t) => t.status === "completed", 20_000);
      expect(done.worker_id).toBe(`exec-1-${HOST}`);
      expect(done.result).toContain(`cwd=${join(root, `exec-1-${HOST}`)}`);
      await check(root, key);
    } finally {
      const stopped = cli(["stop", "--dir", "fleet", "--timeout", "10"], key, { cwd, env });
      expect((await stopped.done).code, stopped.output()).toBe(0);
    }
    expect(readdirSync(join(root, ".fleet")).filter((f) => f.endsWith(".pid") || f === "fleet.json" || f === "env.json")).toEqual([]);
    const log = readFileSync(join(root, ".fleet", `exec-1-${HOST}.log`), "utf8");
    return { root, log };
  }

  it("without tmux: detached workers with pid files and logs; stop ends them", async () => {
    const pids: number[] = [];
    const { log } = await runFleet({ SWITCHBOARD_TMUX: "0" }, async (root) => {
      for (const w of [`planner-1-${HOST}`, `exec-1-${HOST}`, `docs-1-${HOST}`]) pids.push(Number(readFileSync(join(root, ".fleet", `${w}.pid`), "utf8")));
      expect(pids.every(alive)).toBe(true);
      // A second start from the same directory is refused.
      const again = cli(["start", "--dir", root], "unused", { env: { SWITCHBOARD_TMUX: "0" } });
      expect((await again.done).code).toBe(1);
      expect(again.output()).toContain("a fleet is already running");
    });
    expect(pids.some(alive)).toBe(false);
    expect(log).toContain(`[switchboard] worker exec-1-${HOST} (executor)`);
    expect(log).toContain(`worker exec-1-${HOST} stopping: 1 task(s), 1 completed`);
  });

  it("stop kills the agent of a worker it had to SIGKILL, which would otherwise run on as an orphan", async () => {
    const { key, call } = await newTeam();
    const cwd = tempDir();
    const pidOut = join(cwd, "agent.pid");
    const stubborn = join(cwd, "stubborn.sh");
    writeFileSync(stubborn, `trap '' TERM\necho $$ > '${pidOut}'\nwhile true; do sleep 0.2; done\n`);
    writeFileSync(join(cwd, "switchboard.fleet.json"), JSON.stringify({ commands: { executor: `bash '${stubborn}'` }, default: ["bash", AGENT] }));
    const env = { SWITCHBOARD_TMUX: "0" };
    const started = cli(["start", "--executors", "1", "--no-planner", "--dir", "fleet", "--poll-interval", "0.2", "--grace", "60"], key, { cwd, env });
    expect((await started.done).code, started.output()).toBe(0);
    await call("POST", "/v1/tasks", { title: "never ends", role: "executor" });
    await until(() => existsSync(pidOut), 20_000);
    const agent = Number(readFileSync(pidOut, "utf8"));
    expect(alive(agent)).toBe(true);
    const stopped = cli(["stop", "--dir", "fleet", "--timeout", "1"], key, { cwd, env });
    expect((await stopped.done).code).toBe(1);
    expect(stopped.output()).toContain(`exec-1-${HOST}: did not stop in time; SIGKILL to`);
    // The group of the command the worker started (here `sh -c`, the script's parent).
    expect(stopped.output()).toMatch(new RegExp(`exec-1-${HOST}: SIGKILL to its agent's process group \\d+`));
    await until(() => !alive(agent), 5_000);
  });

  it("start says which workers exit at once (here: a refused key)", async () => {
    const cwd = tempDir();
    fleetConfig(cwd);
    const started = cli(["start", "--executors", "0", "--no-planner", "--suffix", "box2", "--dir", "fleet"], "sb_not_a_key", { cwd, env: { SWITCHBOARD_TMUX: "0" } });
    expect((await started.done).code).toBe(1);
    expect(started.output()).toContain("docs-1-box2 exited at once");
    expect(started.output()).toMatch(/claim refused: HTTP 401/);
    const stopped = cli(["stop", "--dir", "fleet"], "unused", { cwd });
    expect((await stopped.done).code).toBe(0);
  });

  const tmuxInstalled = spawnSync("tmux", ["-V"]).status === 0;
  // Skipped only off CI without tmux: .ci/run installs it, and CI must run this test.
  it.skipIf(!tmuxInstalled && !process.env.CI)("with tmux: a session per worker, on its own tmux server here", async () => {
    const socket = `switchboard-test-${process.pid}`;
    const tmux = (...args: string[]) => spawnSync("tmux", ["-L", socket, ...args], { encoding: "utf8" });
    try {
      const { log } = await runFleet({ SWITCHBOARD_TMUX: "1", SWITCHBOARD_TMUX_SOCKET: socket }, async (root) => {
        expect(tmux("list-sessions", "-F", "#{session_name}").stdout.trim().split("\n").sort()).toEqual([`switchboard-docs-1-${HOST}`, `switchboard-exec-1-${HOST}`, `switchboard-planner-1-${HOST}`]);
        // The key reached the sessions through an owner-only file, not the command line.
        expect(readFileSync(join(root, ".fleet", "env.json"), "utf8")).toContain("SWITCHBOARD_API_KEY");
        expect(tmux("capture-pane", "-p", "-t", `switchboard-exec-1-${HOST}`).stdout).toContain(`[switchboard] worker exec-1-${HOST}`);
      });
      expect(tmux("list-sessions").status).not.toBe(0); // no sessions left (the server exits with the last)
      // pipe-pane copies the pane from a moment after it starts: the end is there.
      expect(log).toContain(`worker exec-1-${HOST} stopping: 1 task(s), 1 completed`);
    } finally {
      tmux("kill-server");
    }
  });
});
