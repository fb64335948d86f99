import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevWorker, startDevWorker, newTeamOn } from "./dev-worker";
import { startProxy } from "./runner-helpers";

// The worker daemon's report of an attempt when the answer to it is lost on the way back.

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

const newTeam = () => newTeamOn(worker, "report");

/** One task through a daemon whose first `POST /v1/tasks/:id/<end>` is handled by the Worker but answered 502. */
async function runWithLostAnswer(end: "complete" | "fail", title: string) {
  const { key, call } = await newTeam();
  const task = await call("POST", "/v1/tasks", { title, role: "executor" });
  let lost = 0;
  const proxy = await startProxy(worker.url, (req) => {
    if (req.method !== "POST" || req.url !== `/v1/tasks/${task.id}/${end}` || lost > 0) return undefined;
    lost += 1;
    return { statusAfter: 502 };
  });
  const dir = mkdtempSync(join(tmpdir(), "switchboard-report-"));
  dirs.push(dir);
  try {
    const child = spawn(process.execPath, [CLI, "worker", "--role", "executor", "--name", "exec-alpha", "--dir", dir, ...FAST, "--max-tasks", "1", "--", "bash", AGENT], {
      env: { ...process.env, SWITCHBOARD_URL: proxy.url, SWITCHBOARD_API_KEY: key },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    return { code, output, lost, task: await call("GET", `/v1/tasks/${task.id}`), id: task.id as string };
  } finally {
    await proxy.close();
  }
}

describe("switchboard worker: a report whose answer was lost", () => {
  it("a retried complete that finds the task completed by this worker counts it completed, not lost", async () => {
    const run = await runWithLostAnswer("complete", "complete the thing");
    expect(run.code, run.output).toBe(0);
    expect(run.lost).toBe(1);
    expect(run.task).toMatchObject({ status: "completed", worker_id: "exec-alpha" });
    expect(run.output).toContain(`${run.id} is completed (an earlier try of the report was handled, though its answer was lost)`);
    expect(run.output).not.toContain("lost the lease");
    expect(run.output).toContain("stopping: 1 task(s), 1 completed, 0 failed, 0 lost, 0 released");
  }, 60_000);

  it("a retried fail that finds the task back in the queue with a fail's backoff counts it failed, not lost", async () => {
    const run = await runWithLostAnswer("fail", "fail the thing");
    // --max-tasks 1 whose one task failed: exit 1.
    expect(run.code, run.output).toBe(1);
    expect(run.lost).toBe(1);
    expect(run.task).toMatchObject({ status: "pending", worker_id: "exec-alpha", attempts: 1 });
    expect(run.output).toContain(`${run.id} is pending (an earlier try of the report was handled, though its answer was lost)`);
    expect(run.output).not.toContain("lost the lease");
    expect(run.output).toContain("stopping: 1 task(s), 0 completed, 1 failed, 0 lost, 0 released");
  }, 60_000);
});
