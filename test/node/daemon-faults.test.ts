import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevWorker, freePort, startDevWorker, newTeamOn } from "./dev-worker";
import { startProxy } from "./runner-helpers";

// The worker daemon when things go wrong around it: an agent command that cannot run, a
// server that is down or never answers, a stop at an awkward moment.

const CLI = join(process.cwd(), "cli", "dist", "switchboard.mjs");
const AGENT = join(process.cwd(), "test", "node", "fixtures", "scripted-agent.sh");
const FAST = ["--poll-interval", "0.2", "--lease-heartbeat", "0.4", "--question-poll", "0.2"];

let worker: DevWorker;
const dirs: string[] = [];
beforeAll(async () => {
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  await worker?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "switchboard-faults-"));
  dirs.push(d);
  return d;
}

const newTeam = () => newTeamOn(worker, "faults");

interface Cli {
  child: ChildProcess;
  output: () => string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function cli(args: string[], key: string, options: { cwd?: string; env?: Record<string, string>; url?: string } = {}): Cli {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd,
    env: { ...process.env, SWITCHBOARD_URL: options.url ?? worker.url, SWITCHBOARD_API_KEY: key, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  return { child, output: () => output, done };
}

const worker_ = (key: string, dir: string, command: string[], extra: string[] = [], options: Parameters<typeof cli>[2] = {}) =>
  cli(["worker", "--role", "executor", "--name", "exec-faults", "--dir", dir, ...FAST, ...extra, "--", ...command], key, options);

async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A server that accepts connections and never answers. */
async function blackHole(): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const server = createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => sockets.length,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe("switchboard worker: an agent command that cannot run", () => {
  it("refuses at startup (exit 2, naming the fix) a program not on PATH, and the default claude -p where there is no claude; no task is touched", async () => {
    const { key, call } = await newTeam();
    const task = await call("POST", "/v1/tasks", { title: "complete me", role: "executor", max_attempts: 1 });
    const missing = worker_(key, tempDir(), ["no-such-agent-cmd"]);
    expect((await missing.done).code, missing.output()).toBe(2);
    expect(missing.output()).toContain("the agent command no-such-agent-cmd is not on PATH; install it or give the agent command after --");

    // No fleet config here, nor in XDG_CONFIG_HOME: the default `sh -c "claude -p"`, on a PATH without claude.
    const cwd = tempDir();
    const byDefault = cli(["worker", "--role", "executor", "--name", "exec-faults", "--dir", join(cwd, "w"), ...FAST], key, { cwd, env: { PATH: "/usr/bin:/bin", XDG_CONFIG_HOME: cwd } });
    expect((await byDefault.done).code, byDefault.output()).toBe(2);
    expect(byDefault.output()).toContain("the agent command `claude -p` cannot start here: claude is not on PATH");

    const notExecutable = join(cwd, "agent.sh");
    writeFileSync(notExecutable, "#!/bin/sh\necho hi\n");
    chmodSync(notExecutable, 0o644);
    const plain = worker_(key, tempDir(), ["./agent.sh"], [], { cwd });
    expect((await plain.done).code, plain.output()).toBe(2);
    expect(plain.output()).toContain(`the agent command ${notExecutable} is not an executable file: chmod +x it`);

    expect(await call("GET", `/v1/tasks/${task.id}`)).toMatchObject({ status: "pending", attempts: 0 });
  });

  it("runs a relative agent path from where the worker was started, not from the worker's directory", async () => {
    const { key, call } = await newTeam();
    const cwd = tempDir();
    writeFileSync(join(cwd, "my-agent.sh"), `#!/bin/sh\necho "ran from the start directory" > "$SWITCHBOARD_RESULT_FILE"\n`);
    chmodSync(join(cwd, "my-agent.sh"), 0o755);
    const task = await call("POST", "/v1/tasks", { title: "relative", role: "executor", max_attempts: 1 });
    const run = worker_(key, join(cwd, "workers", "w1"), ["./my-agent.sh"], ["--max-tasks", "1"], { cwd });
    expect((await run.done).code, run.output()).toBe(0);
    expect(await call("GET", `/v1/tasks/${task.id}`)).toMatchObject({ status: "completed", result: "ran from the start directory\n" });
  });

  it("gives the task back and stops (exit 1) when the agent's program is gone at run time (ENOENT), or a shell's 127 or 126 is for the command's own program", async () => {
    // ENOENT: the program was there at startup and is gone when a task comes.
    const cwd = tempDir();
    const gone = join(cwd, "gone.sh");
    writeFileSync(gone, "#!/bin/sh\necho done\n");
    chmodSync(gone, 0o755);
    const { key, call } = await newTeam();
    const later = worker_(key, tempDir(), [gone]);
    await until(() => later.output().includes("worker exec-faults (executor)"), "the worker to start");
    rmSync(gone);
    const task = await call("POST", "/v1/tasks", { title: "third", role: "executor", max_attempts: 1 });
    expect((await later.done).code, later.output()).toBe(1);
    expect(later.output()).toMatch(/did not start: it could not be started: spawn .*gone\.sh ENOENT/);
    expect(await call("GET", `/v1/tasks/${task.id}`)).toMatchObject({ status: "pending", attempts: 0 });

    // 127 or 126 from `sh -c` (dash says 127 for both): the script's own program, on PATH at
    // startup, is gone or no longer executable when a task comes.
    const bin = tempDir();
    const PATH = `${bin}:${process.env.PATH}`;
    for (const [change, says] of [
      [(p: string) => rmSync(p), "my-agent is not on PATH"],
      [(p: string) => chmodSync(p, 0o644), `${join(bin, "my-agent")} is not executable`],
    ] as const) {
      const agent = join(bin, "my-agent");
      writeFileSync(agent, "#!/bin/sh\necho done\n");
      chmodSync(agent, 0o755);
      const team = await newTeam();
      const run = worker_(team.key, tempDir(), ["sh", "-c", "my-agent --do-the-task"], ["--max-tasks", "2"], { env: { PATH } });
      await until(() => run.output().includes("worker exec-faults (executor)"), "the worker to start");
      change(agent);
      const first = await team.call("POST", "/v1/tasks", { title: "first", role: "executor", max_attempts: 1 });
      const second = await team.call("POST", "/v1/tasks", { title: "second", role: "executor", max_attempts: 1 });
      expect((await run.done).code, run.output()).toBe(1);
      expect(run.output()).toMatch(/did not start: it exited with 12[67] \(a shell that could not run a command\): .*my-agent/);
      expect(run.output()).toContain(`, and ${says}. Install what it runs`);
      expect(run.output()).toContain("1 released");
      for (const t of [first, second]) expect(await team.call("GET", `/v1/tasks/${t.id}`)).toMatchObject({ status: "pending", attempts: 0 });
      rmSync(agent, { force: true });
    }
  });

  it("fails the attempt and goes on when the agent command still runs here and its own script exits 127 (a command it ran is missing)", async () => {
    const { key, call } = await newTeam();
    const first = await call("POST", "/v1/tasks", { title: "first", role: "executor", max_attempts: 1 });
    const second = await call("POST", "/v1/tasks", { title: "second", role: "executor", max_attempts: 1 });
    // The work done, then a notifier this machine does not have (`claude -p …; notify-send done`).
    const script = 'echo "did the work" > "$SWITCHBOARD_RESULT_FILE"; [ "$SWITCHBOARD_TASK_TITLE" = second ] || no-such-notifier done';
    const run = worker_(key, tempDir(), ["sh", "-c", script], ["--max-tasks", "2"]);
    expect((await run.done).code, run.output()).toBe(0);
    expect(run.output()).not.toContain("did not start");
    expect(run.output()).toContain("2 task(s), 1 completed, 1 failed, 0 lost, 0 released");
    const failed = await call("GET", `/v1/tasks/${first.id}`);
    expect(failed).toMatchObject({ status: "failed", attempts: 1 });
    expect(failed.result).toContain("The agent exited with code 127.");
    expect(failed.result).toContain("no-such-notifier");
    expect(await call("GET", `/v1/tasks/${second.id}`)).toMatchObject({ status: "completed", result: "did the work\n" });
  });

  it("accepts at startup a `sh -c` script that starts with one of the shell's builtins", async () => {
    const { key, call } = await newTeam();
    const task = await call("POST", "/v1/tasks", { title: "builtin", role: "executor", max_attempts: 1 });
    const run = worker_(key, tempDir(), ["bash", "-c", 'declare -r done="by bash"; echo "$done" > "$SWITCHBOARD_RESULT_FILE"'], ["--max-tasks", "1"]);
    expect((await run.done).code, run.output()).toBe(0);
    expect(await call("GET", `/v1/tasks/${task.id}`)).toMatchObject({ status: "completed", result: "by bash\n" });
  });
});

describe("switchboard worker: the server down or silent", () => {
  it("keeps reporting a finished attempt through an outage longer than five retries, honouring Retry-After, while the lease lasts", async () => {
    const { key, call } = await newTeam();
    const task = await call("POST", "/v1/tasks", { title: "complete through an outage", role: "executor" });
    let refused = 0;
    const proxy = await startProxy(worker.url, (req) => {
      if (req.method !== "POST" || req.url !== `/v1/tasks/${task.id}/complete` || refused >= 8) return undefined;
      refused += 1;
      return { status: 503, retryAfter: 1 };
    });
    try {
      const run = worker_(key, tempDir(), ["bash", AGENT], ["--max-tasks", "1"], { url: proxy.url });
      expect((await run.done).code, run.output()).toBe(0);
      expect(refused).toBe(8);
      expect(await call("GET", `/v1/tasks/${task.id}`)).toMatchObject({ status: "completed", cost_usd: 0.25 });
      expect(run.output()).toContain("1 completed, 0 failed, 0 lost");
    } finally {
      await proxy.close();
    }
  }, 90_000);

  it("gives a report up at the end of the lease as it stood when the report began, though the lease heartbeats still succeed", async () => {
    const { key, call } = await newTeam();
    const task = await call("POST", "/v1/tasks", { title: "complete against a server that refuses it", role: "executor" });
    // The lease, as the worker is told at the claim and at each heartbeat, ends 3 s after the
    // worker's minute of clock slack has been taken off: retried until the lease as last
    // heartbeated ends, the report would go on as long as the heartbeats do.
    const shortLease = (body: string) => {
      if (!body) return body;
      const t = JSON.parse(body);
      if (t.lease) t.lease.expires_at = new Date(Date.now() - 60_000 + 3000).toISOString();
      return JSON.stringify(t);
    };
    let refused = 0;
    const proxy = await startProxy(worker.url, (req) => {
      if (req.method !== "POST") return undefined;
      if (req.url === `/v1/tasks/${task.id}/complete`) {
        refused += 1;
        return { status: 503 };
      }
      if (req.url === "/v1/tasks/claim" || req.url === `/v1/tasks/${task.id}/heartbeat`) return { rewrite: shortLease };
      return undefined;
    });
    const run = worker_(key, tempDir(), ["bash", AGENT], ["--max-tasks", "1"], { url: proxy.url });
    try {
      const ended = await Promise.race([run.done, new Promise<"still reporting">((r) => setTimeout(() => r("still reporting"), 40_000))]);
      expect(ended, run.output()).toEqual({ code: 1, signal: null });
      expect(refused).toBeGreaterThan(0);
      expect(run.output()).toContain(`could not report ${task.id}: HTTP 503`);
      expect(run.output()).toContain("1 task(s), 0 completed, 0 failed, 1 lost");
    } finally {
      run.child.kill("SIGKILL");
      await proxy.close();
    }
  }, 60_000);

  it("names the URL and the cause of a network error, not just 'fetch failed'", async () => {
    const port = await freePort();
    const run = worker_("sb_unused", tempDir(), ["bash", AGENT], [], { url: `http://127.0.0.1:${port}` });
    await until(() => run.output().includes("] claim failed: "), "a failed claim");
    run.child.kill("SIGTERM");
    await run.done;
    expect(run.output()).toContain(`claim failed: could not reach http://127.0.0.1:${port} (POST /v1/tasks/claim): connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(run.output()).not.toContain("fetch failed");
  });

  it("a stop against a server that never answers ends the worker without waiting out its requests' 30 s timeouts", async () => {
    const hole = await blackHole();
    try {
      const run = worker_("sb_unused", tempDir(), ["bash", AGENT], [], { url: hole.url });
      // The first worker heartbeat is in flight, and will never be answered.
      await until(() => hole.connections() > 0, "the first request");
      run.child.kill("SIGINT");
      expect(await run.done, run.output()).toEqual({ code: 0, signal: null });
      expect(run.output()).toContain("worker exec-faults stopping: 0 task(s)");
    } finally {
      await hole.close();
    }
  }, 25_000);

  it("a second signal ends a worker whose server stopped answering, after giving its task back", async () => {
    const { key, call } = await newTeam();
    const dir = tempDir();
    const task = await call("POST", "/v1/tasks", { title: "stubborn", role: "executor" });
    const stubborn = join(dir, "..", `stubborn-${Date.now()}.sh`);
    writeFileSync(stubborn, `trap 'echo got TERM, ignoring' TERM\necho started\nwhile true; do sleep 0.1; done\n`);
    let silent = false;
    // Once silent, only a release gets through: heartbeats and logs hang.
    const proxy = await startProxy(worker.url, (req) => (silent && !req.url?.endsWith("/release") ? { delayMs: 60_000 } : undefined));
    try {
      const run = worker_(key, dir, ["bash", stubborn], ["--grace", "60"], { url: proxy.url });
      await until(() => run.output().includes("started"), "the agent to start");
      silent = true;
      run.child.kill("SIGINT");
      await until(() => run.output().includes("the agent has 60 s to finish"), "the first stop");
      run.child.kill("SIGINT");
      expect((await run.done).code, run.output()).toBe(0);
      expect(await call("GET", `/v1/tasks/${task.id}`)).toMatchObject({ status: "pending", attempts: 0 });
      expect(run.output()).toContain("1 released");
    } finally {
      await proxy.close();
    }
  }, 25_000);

  it("a stop while a claim is in flight gives the claimed task back without starting the agent", async () => {
    const { key, call } = await newTeam();
    const task = await call("POST", "/v1/tasks", { title: "complete if started", role: "executor" });
    let claims = 0;
    // Claims take a while to arrive: the stop lands while the first is in flight.
    const proxy = await startProxy(worker.url, (req) => (req.url === "/v1/tasks/claim" && ++claims > 0 ? { delayMs: 1500 } : undefined));
    try {
      const run = worker_(key, tempDir(), ["bash", AGENT], [], { url: proxy.url });
      await until(() => claims > 0, "the first claim");
      run.child.kill("SIGTERM");
      expect((await run.done).code, run.output()).toBe(0);
      expect(run.output()).not.toContain("agent exec-faults (executor)");
      expect(run.output()).toContain(`claimed ${task.id} "complete if started" as the worker was stopped`);
      expect(await call("GET", `/v1/tasks/${task.id}`)).toMatchObject({ status: "pending", attempts: 0 });
    } finally {
      await proxy.close();
    }
  });
});

describe("switchboard worker: what it prints", () => {
  it("shows a task title's control characters on its terminal rather than sending them", async () => {
    const { key, call } = await newTeam();
    const task = await call("POST", "/v1/tasks", { title: "complete \u001b]0;pwned\u0007 \u001b[2J now", role: "executor" });
    const run = worker_(key, tempDir(), ["bash", AGENT], ["--max-tasks", "1"]);
    expect((await run.done).code, run.output()).toBe(0);
    const claimed = run.output().split("\n").find((l) => l.startsWith(`[switchboard] claimed ${task.id}`));
    expect(claimed).toBe(`[switchboard] claimed ${task.id} "complete ^[]0;pwned^G ^[[2J now" (attempt 1 of 3)`);
  });

  it("--max-tasks exits 1 when it completed none of the tasks it handled", async () => {
    const { key, call } = await newTeam();
    await call("POST", "/v1/tasks", { title: "fail this one", role: "executor", max_attempts: 1 });
    const run = worker_(key, tempDir(), ["bash", AGENT], ["--max-tasks", "1"]);
    expect((await run.done).code, run.output()).toBe(1);
    expect(run.output()).toContain("1 task(s), 0 completed, 1 failed");
  });
});
