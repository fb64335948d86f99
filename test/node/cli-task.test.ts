import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli as runProcess } from "./cli-process";
import { type DevWorker, startDevWorker } from "./dev-worker";

/** The people's commands about one task (task, cancel, retry) and the team's costs and workers, run as built, against the real Worker. */

const ANSI = /\x1b\[/;

let worker: DevWorker;
let home: string;
beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "switchboard-cli-task-home-"));
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  await worker?.stop();
  rmSync(home, { recursive: true, force: true });
});

const runCli = (args: string[], env: Record<string, string | undefined>) => runProcess(home, args, env);

async function api<T = any>(path: string, key: string, body?: unknown): Promise<T> {
  const method = body === undefined ? "GET" : "POST";
  const res = await fetch(`${worker.url}${path}`, { method, headers: { Authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

/** A fresh team, its operator key, read and agent keys, and the env of a person using the operator key. */
async function newTeam(name = "tasks") {
  const team = await api<{ team_id: string; api_key: string }>("/v1/admin/teams", worker.adminToken, { name });
  const reader = await api<{ key: string }>("/v1/keys", team.api_key, { name: "reader", scopes: ["read"] });
  const agent = await api<{ key: string }>("/v1/keys", team.api_key, { name: "agent", scopes: ["agent"] });
  const xdg = mkdtempSync(join(home, "xdg-"));
  const env = { XDG_CONFIG_HOME: xdg, SWITCHBOARD_URL: worker.url, SWITCHBOARD_API_KEY: team.api_key };
  return { ...team, env, readEnv: { ...env, SWITCHBOARD_API_KEY: reader.key }, agentEnv: { ...env, SWITCHBOARD_API_KEY: agent.key } };
}

/** Queues a task and has `workerId` claim it: the task with its lease. */
async function claimed(key: string, workerId: string, task: Record<string, unknown>) {
  const created = await api<{ id: string }>("/v1/tasks", key, task);
  const lease = await api<{ id: string; lease: { id: string } }>("/v1/tasks/claim", key, { worker_id: workerId, role: task.role });
  expect(lease.id).toBe(created.id);
  return lease;
}

describe("task", () => {
  it("shows a failed task in full: why it failed (control characters masked), cost, dependencies, what it blocks, its log tail", async () => {
    const team = await newTeam();
    const t = await claimed(team.api_key, "exec-alpha", { title: "Fix the \x1b]0;pwned\x07login bug", role: "executor", priority: "high", max_attempts: 1, description: "## Steps\n\n1. look\r\n2. fix" });
    await api(`/v1/workers/exec-alpha/logs`, team.api_key, { task_id: t.id, lines: ["cloning the repository", "running the tests", "\x1b[2J3 failed"] });
    await api(`/v1/tasks/${t.id}/fail`, team.api_key, { lease_id: t.lease.id, result: "tests failed:\n\x1b[31mauth.test.ts\x1b[0m", cost_usd: 0.42, tokens: 12345, duration_ms: 192_000 });
    const dependent = await api<{ id: string }>("/v1/tasks", team.api_key, { title: "Document the fix", role: "documentation", depends_on: [t.id] });

    const shown = await runCli(["task", t.id], team.env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stderr).toBe("");
    const out = shown.stdout;
    expect(out).toContain(`${t.id}  Fix the ^[]0;pwned^Glogin bug\n`);
    expect(out).toMatch(/^status +failed, attempts 1\/1$/m);
    expect(out).toMatch(/^role +executor$/m);
    expect(out).toMatch(/^priority +high$/m);
    expect(out).toMatch(/^worker +exec-alpha$/m);
    expect(out).toMatch(/^cost +\$0\.42, 12,345 tokens, 3m12s of agent time$/m);
    expect(out).toMatch(/^ended +\S+Z \(\d+s ago\)$/m);
    expect(out).toContain("Description\n  ## Steps\n\n  1. look\n  2. fix\n");
    expect(out).toContain("Why it failed\n  tests failed:\n  ^[[31mauth.test.ts^[[0m\n");
    expect(out).toMatch(/Log \(last 10 lines\)\n {2}\S+Z exec-alpha cloning the repository\n {2}\S+Z exec-alpha running the tests\n {2}\S+Z exec-alpha \^\[\[2J3 failed\n$/);
    expect(out).not.toMatch(ANSI);
    expect(out).not.toContain("\x07");

    // The task that waits on it: its dependency, and what blocks it, with the fix.
    const waiting = await runCli(["task", dependent.id, "--no-log"], team.env);
    expect(waiting.code, waiting.stderr).toBe(0);
    expect(waiting.stdout).toMatch(new RegExp(`^depends on +${t.id}$`, "m"));
    expect(waiting.stdout).toMatch(new RegExp(`^blocked by +${t.id} \\(failed or cancelled: \`switchboard retry ${t.id}\` unblocks this one\\)$`, "m"));
    expect(waiting.stdout).toMatch(/^status +blocked, attempts 0\/3$/m);
    expect(waiting.stdout).not.toContain("Log (");

    // --lines narrows the tail, and says there is more.
    const tail = await runCli(["task", t.id, "--lines", "1"], team.env);
    expect(tail.stdout).toMatch(/Log \(last 1 lines\)\n {2}\S+Z exec-alpha \^\[\[2J3 failed\n {2}more with: switchboard logs --task \S+ --lines N \(or --follow\)\n$/);

    // --json is the API's task, as it gives it (a read key is enough).
    const json = await runCli(["task", t.id, "--json"], team.readEnv);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(await api(`/v1/tasks/${t.id}`, team.api_key));
  });

  it("says when there is no such task (exit 1), and refuses what is not a task id (exit 2)", async () => {
    const team = await newTeam();
    const missing = await runCli(["task", "task_nope"], team.env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: Not found: No task task_nope\.$/m);
    expect(missing.stderr).toMatch(/^hint: `switchboard tasks` lists the team's tasks and their ids$/m);
    expect(missing.stdout).toBe("");

    const bad = await runCli(["task", "not a task"], team.env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: not a task id: "not a task"$/m);
    expect((await runCli(["task"], team.env)).code).toBe(2);
    expect((await runCli(["task", "task_x", "--lines", "0"], team.env)).code).toBe(2);

    // `tasks` with an id is still bad usage, but points at `task`.
    const listed = await runCli(["tasks", "task_abc"], team.env);
    expect(listed.code).toBe(2);
    expect(listed.stderr).toMatch(/^error: tasks takes no arguments \(got task_abc\)$/m);
    expect(listed.stderr).toMatch(/^hint: one task in full is `switchboard task task_abc`$/m);
  });
});

describe("cancel and retry", () => {
  it("cancel stops a task that has not ended and blocks its dependents; retry queues it again and unblocks them", async () => {
    const team = await newTeam();
    const t = await claimed(team.api_key, "exec-alpha", { title: "A runaway task", role: "executor" });
    const dependent = await api<{ id: string }>("/v1/tasks", team.api_key, { title: "after it", role: "executor", depends_on: [t.id] });

    const cancelled = await runCli(["cancel", t.id], team.env);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toBe(`Cancelled ${t.id} (A runaway task). Tasks that depend on it are blocked until it is retried: switchboard retry ${t.id}\n`);
    expect(await api(`/v1/tasks/${t.id}`, team.api_key)).toMatchObject({ status: "cancelled" });
    expect(await api(`/v1/tasks/${dependent.id}`, team.api_key)).toMatchObject({ status: "blocked", blocked_by: t.id });

    // Cancelled already: the API's 409 says the state, the hint where to look.
    const again = await runCli(["cancel", t.id], team.env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: Conflict: The task is cancelled; only a task that has not ended can be cancelled\.$/m);
    expect(again.stderr).toMatch(new RegExp(`^hint: \`switchboard task ${t.id}\` shows its status and why$`, "m"));

    const retried = await runCli(["retry", t.id, "--json"], team.env);
    expect(retried.code, retried.stderr).toBe(0);
    expect(JSON.parse(retried.stdout)).toMatchObject({ id: t.id, status: "pending", attempts: 0, worker_id: null });
    expect(await api(`/v1/tasks/${dependent.id}`, team.api_key)).toMatchObject({ status: "pending", blocked_by: null });

    // Pending is not failed or cancelled: 409.
    const notEnded = await runCli(["retry", t.id], team.env);
    expect(notEnded.code).toBe(1);
    expect(notEnded.stderr).toMatch(/^error: Conflict: The task is pending; only a failed or cancelled task can be retried\.$/m);

    // A blocked task names the one to retry instead.
    await runCli(["cancel", t.id], team.env);
    const blocked = await runCli(["retry", dependent.id], team.env);
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toContain(`error: Conflict: The task is blocked by ${t.id}; retry that task and this one is unblocked.`);

    const human = await runCli(["retry", t.id], team.env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toBe(`Queued ${t.id} (A runaway task) again: pending, attempts 0/3.\n`);
  });

  it("a completed task cannot be cancelled, an unknown one is 404, and a read or agent key is refused with the fix", async () => {
    const team = await newTeam();
    const done = await claimed(team.api_key, "exec-alpha", { title: "finished", role: "executor" });
    await api(`/v1/tasks/${done.id}/complete`, team.api_key, { lease_id: done.lease.id, result: "done" });
    const late = await runCli(["cancel", done.id], team.env);
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(/^error: Conflict: The task is completed; only a task that has not ended can be cancelled\.$/m);

    for (const command of ["cancel", "retry"]) {
      const missing = await runCli([command, "task_nope"], team.env);
      expect(missing.code, command).toBe(1);
      expect(missing.stderr).toMatch(/^error: Not found: No task task_nope\.$/m);
      expect(missing.stderr).toMatch(/^hint: `switchboard tasks` lists the team's tasks/m);
      const bad = await runCli([command, "../x"], team.env);
      expect(bad.code, command).toBe(2);
      expect((await runCli([command], team.env)).code, command).toBe(2);
    }

    const pending = await api<{ id: string }>("/v1/tasks", team.api_key, { title: "stays", role: "executor" });
    for (const [env, from] of [[team.readEnv, "read"], [team.agentEnv, "agent"]] as const) {
      const refused = await runCli(["cancel", pending.id], env);
      expect(refused.code, from).toBe(1);
      expect(refused.stderr).toMatch(/^error: Forbidden: This needs a key with the operator scope/m);
      expect(refused.stderr).toMatch(/^hint: the key from SWITCHBOARD_API_KEY lacks the operator scope: use a key that has it/m);
      expect(refused.stdout).toBe("");
    }
    expect(await api(`/v1/tasks/${pending.id}`, team.api_key)).toMatchObject({ status: "pending" });
  });
});

describe("costs and workers", () => {
  it("costs sums what the attempts reported by day, role, worker or task, as a table with its total and as JSON", async () => {
    const team = await newTeam();
    const a = await claimed(team.api_key, "exec-alpha", { title: "one", role: "executor" });
    await api(`/v1/tasks/${a.id}/complete`, team.api_key, { lease_id: a.lease.id, cost_usd: 1.5, tokens: 1_000_000, duration_ms: 60_000 });
    const b = await claimed(team.api_key, "plan-beta", { title: "two", role: "planner", max_attempts: 1 });
    await api(`/v1/tasks/${b.id}/fail`, team.api_key, { lease_id: b.lease.id, result: "no plan", cost_usd: 0.004, tokens: 2000, duration_ms: 5_000 });

    const byRole = await runCli(["costs", "--by", "role"], team.readEnv);
    expect(byRole.code, byRole.stderr).toBe(0);
    expect(byRole.stdout).toMatch(/│ role\s+│ cost\s+│ tokens\s+│ agent time │ tasks │/);
    expect(byRole.stdout).toMatch(/│ executor │ \$1\.50\s+│ 1,000,000 │ 1m00s\s+│ 1\s+│/);
    expect(byRole.stdout).toMatch(/│ planner\s+│ \$0\.0040 │ 2,000\s+│ 5\.0s\s+│ 1\s+│/);
    expect(byRole.stdout).toMatch(/^total: \$1\.50, 1,002,000 tokens, 1m05s of agent time$/m);
    expect(byRole.stdout).not.toMatch(ANSI);

    const byWorker = await runCli(["costs", "--by", "worker", "--json"], team.env);
    expect(byWorker.code, byWorker.stderr).toBe(0);
    expect(JSON.parse(byWorker.stdout)).toEqual(await api("/v1/costs?by=worker", team.api_key));
    expect(JSON.parse(byWorker.stdout).items.map((g: { key: string }) => g.key)).toEqual(["exec-alpha", "plan-beta"]);

    // By day (the default), within the day the API dated the reports, and on a day without any.
    const { items: days } = await api<{ items: { key: string }[] }>("/v1/costs?by=day", team.api_key);
    const day = days[0]?.key as string;
    const today = await runCli(["costs", "--day", day], team.env);
    expect(today.code, today.stderr).toBe(0);
    expect(today.stdout).toMatch(new RegExp(`│ ${day} │ \\$1\\.50\\s+│ 1,002,000 │ 1m05s\\s+│ 2\\s+│`));
    const none = await runCli(["costs", "--day", "2000-01-01"], team.env);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toBe("no costs reported on 2000-01-01\n");
    const span = await runCli(["costs", "--by", "task", "--from", "2000-01-01", "--to", day, "--json"], team.env);
    expect(JSON.parse(span.stdout).items.map((g: { key: string }) => g.key).sort()).toEqual([a.id, b.id].sort());

    for (const args of [["costs", "--by", "week"], ["costs", "--day", "2026-02-30"], ["costs", "--day", "yesterday"], ["costs", "--day", day, "--to", day], ["costs", "--from", "2026-02-02", "--to", "2026-02-01"]]) {
      const run = await runCli(args, team.env);
      expect(run.code, `${args.join(" ")}: ${run.stderr}`).toBe(2);
    }
    expect((await runCli(["costs", "--day", "2026-02-30"], team.env)).stderr).toMatch(/^error: --day 2026-02-30 is not a calendar day$/m);
  });

  it("workers lists the team's workers with their cost, as a table and as JSON", async () => {
    const team = await newTeam();
    const empty = await runCli(["workers"], team.env);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toContain("no workers yet");

    const t = await claimed(team.api_key, "exec-alpha", { title: "one", role: "executor" });
    await api(`/v1/tasks/${t.id}/complete`, team.api_key, { lease_id: t.lease.id, cost_usd: 2.25 });
    await api("/v1/workers/plan-beta/heartbeat", team.api_key, { role: "planner", status: "idle" });

    const table = await runCli(["workers"], team.readEnv);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/│ worker\s+│ role\s+│ status │ current task │ completed │ cost\s+│ last seen │/);
    expect(table.stdout).toMatch(/│ exec-alpha │ executor │ idle\s+│ -\s+│ 1\s+│ \$2\.25 │ \d+s ago\s+│/);
    expect(table.stdout).toMatch(/│ plan-beta\s+│ planner\s+│ idle\s+│ -\s+│ 0\s+│ \$0\.00 │ \d+s ago\s+│/);
    expect(table.stdout).not.toMatch(ANSI);

    const json = await runCli(["workers", "--json"], team.env);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(await api("/v1/workers", team.api_key));

    const refused = await runCli(["workers"], { ...team.env, SWITCHBOARD_API_KEY: "sb_wrong" });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: Unauthorized: /m);
  });
});
