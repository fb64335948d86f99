import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SwitchboardClient } from "../../cli/client";
import { parseSteps, runSteps } from "../../cli/run";
import { type DevWorker, eventually, getJson, setUpTeam, startDevWorker } from "./dev-worker";
import { alive, nodeAgent, sleep, startCli } from "./runner-helpers";

// Stopping the runner: Ctrl-C between steps, an agent that ignores SIGTERM, a second Ctrl-C,
// an agent killed by a signal, and the steps that never ran; and a step's end when the agent
// leaves a child behind.

let worker: DevWorker;
const leftovers: number[] = [];
beforeAll(async () => {
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  for (const pid of leftovers) if (alive(pid)) process.kill(pid, "SIGKILL");
  await worker?.stop();
});

const envFor = (key: string) => ({ SWITCHBOARD_URL: worker.url, SWITCHBOARD_API_KEY: key });
/** An agent that prints its pid, then says so and carries on when told to stop. */
const stubborn = nodeAgent(`process.on("SIGTERM", () => console.log("ignoring SIGTERM")); console.log("pid " + process.pid); setInterval(() => {}, 1000)`);

/** The run's end, or "still running" after `ms`. */
const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, sleep(ms).then(() => "still running" as const)]);

function agentPid(stdout: string): number {
  const pid = Number(/pid (\d+)/.exec(stdout)?.[1]);
  leftovers.push(pid);
  return pid;
}

describe("switchboard run: stopping", () => {
  it("a Ctrl-C between steps starts no further step; those show as skipped", async () => {
    const team = await setUpTeam(worker, "between", "t1");
    const interrupt = new AbortController();
    // The interrupt lands right after design's step_completed went out, before prep begins.
    const client = new SwitchboardClient({
      baseUrl: worker.url,
      apiKey: team.api_key,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (typeof init?.body === "string" && init.body.includes('"type":"step_completed"')) interrupt.abort();
        return res;
      },
    });
    const outcomes = await runSteps(client, { sessionId: "between", topicId: "t1", steps: parseSteps("all") ?? [], command: nodeAgent(`console.log("ok")`), interrupt: interrupt.signal, out: () => {} });
    expect(outcomes.map((o) => `${o.step} ${o.status}`)).toEqual(["design completed", "prep skipped", "explore skipped", "review skipped", "implement skipped", "evaluate skipped"]);
    expect(outcomes[1]).toMatchObject({ turns: 0, max_turns: 40, duration_ms: 0 });
    const topic = await eventually(() => getJson(worker, "/v1/sessions/between/topics/t1", team.api_key), (t) => t.steps?.design?.status === "completed");
    expect(topic.steps.prep.status).toBe("pending");
  }, 60_000);

  it("a Ctrl-C while step_started is being sent ends the step as interrupted without starting its agent", async () => {
    const team = await setUpTeam(worker, "during-start", "t1");
    const interrupt = new AbortController();
    const sent: string[] = [];
    const client = new SwitchboardClient({
      baseUrl: worker.url,
      apiKey: team.api_key,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (typeof init?.body === "string") sent.push(...[...init.body.matchAll(/"type":"([a-z_.]+)"/g)].map((m) => m[1] as string));
        if (typeof init?.body === "string" && init.body.includes('"type":"step_started"')) interrupt.abort();
        return res;
      },
    });
    const marker = join(mkdtempSync(join(tmpdir(), "sb-start-")), "agent-ran");
    const agent = nodeAgent(`require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran")`);
    const outcomes = await runSteps(client, { sessionId: "during-start", topicId: "t1", steps: parseSteps("all") ?? [], command: agent, interrupt: interrupt.signal, out: () => {} });
    expect(outcomes.map((o) => `${o.step} ${o.status}`)).toEqual(["design interrupted", "prep skipped", "explore skipped", "review skipped", "implement skipped", "evaluate skipped"]);
    expect(existsSync(marker)).toBe(false);
    // No agent ran, so there is no usage to report: the start, then its ending.
    expect(sent).toEqual(["step_started", "step_failed"]);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/during-start/topics/t1", team.api_key), (t) => t.steps?.design?.status === "failed");
    expect(topic.steps.design.error).toBe("interrupted");
  }, 60_000);

  it("an agent that ignores SIGTERM is killed after the grace period", async () => {
    const team = await setUpTeam(worker, "grace", "t1");
    const run = startCli(["run", "--session", "grace", "--topic", "t1", "design", "--", ...stubborn], { ...envFor(team.api_key), SWITCHBOARD_KILL_GRACE_MS: "1000" });
    await run.waitFor((o) => o.includes("pid "), 15_000, "the agent's pid");
    const pid = agentPid(run.out.stdout);
    run.child.kill("SIGINT");
    const end = await within(run.exited, 15_000);
    expect(end).toMatchObject({ code: 130 });
    expect(run.out.stdout).toContain("ignoring SIGTERM");
    expect(alive(pid)).toBe(false);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/grace/topics/t1", team.api_key), (t) => t.steps?.design?.status === "failed");
    expect(topic.steps.design.error).toBe("interrupted");
  }, 60_000);

  it("a second Ctrl-C kills the agent at once, rather than leaving it running", async () => {
    const team = await setUpTeam(worker, "twice", "t1");
    // A grace period far past the wait below: only the second Ctrl-C can end the agent in time.
    const run = startCli(["run", "--session", "twice", "--topic", "t1", "design", "--", ...stubborn], { ...envFor(team.api_key), SWITCHBOARD_KILL_GRACE_MS: "60000" });
    await run.waitFor((o) => o.includes("pid "), 15_000, "the agent's pid");
    const pid = agentPid(run.out.stdout);
    run.child.kill("SIGINT");
    await run.waitFor((o) => o.includes("ignoring SIGTERM"), 5000, "the agent told to stop");
    run.child.kill("SIGINT");
    const end = await within(run.exited, 20_000);
    expect(end).toMatchObject({ code: 130 });
    expect(alive(pid)).toBe(false);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/twice/topics/t1", team.api_key), (t) => t.steps?.design?.status === "failed");
    expect(topic.steps.design.error).toBe("interrupted");
  }, 60_000);

  it("a closed terminal (SIGHUP) stops the agent as a Ctrl-C does: its group told to stop, step_failed, exit 129", async () => {
    const team = await setUpTeam(worker, "hangup", "t1");
    const run = startCli(["run", "--session", "hangup", "--topic", "t1", "design", "--", ...nodeAgent(`console.log("pid " + process.pid); setInterval(() => {}, 1000)`)], envFor(team.api_key));
    await run.waitFor((o) => o.includes("pid "), 15_000, "the agent's pid");
    const pid = agentPid(run.out.stdout);
    run.child.kill("SIGHUP");
    const end = await within(run.exited, 15_000);
    expect(end).toMatchObject({ code: 129 });
    expect(alive(pid)).toBe(false);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/hangup/topics/t1", team.api_key), (t) => t.steps?.design?.status === "failed");
    expect(topic.steps.design.error).toBe("interrupted");
  }, 60_000);

  it("an agent killed by a signal is reported so, and the steps after it are skipped", async () => {
    const team = await setUpTeam(worker, "killed", "t1");
    const run = await startCli(["run", "--session", "killed", "--topic", "t1", "all", "--", ...nodeAgent(`process.kill(process.pid, "SIGTERM"); setTimeout(() => {}, 5000)`)], envFor(team.api_key)).exited;
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/│ design\s+│ failed\s+│ 0\/15 /);
    expect(run.stdout).toMatch(/└[─┴]+┘\ndesign failed: killed by SIGTERM\n/);
    expect(run.stderr).toContain("[switchboard] design failed: killed by SIGTERM\n");
    for (const step of ["prep", "explore", "review", "implement", "evaluate"]) expect(run.stdout).toMatch(new RegExp(`│ ${step}\\s+│ skipped\\s+│ 0/\\d+ `));
    const topic = await eventually(() => getJson(worker, "/v1/sessions/killed/topics/t1", team.api_key), (t) => t.steps?.design?.status === "failed");
    expect(topic.steps.design.error).toBe("killed by SIGTERM");
    expect(topic.steps.prep.status).toBe("pending");
  }, 60_000);

  it("an agent that cannot start: the reason is printed, not only sent", async () => {
    const team = await setUpTeam(worker, "nostart", "t1");
    const run = await startCli(["run", "--session", "nostart", "--topic", "t1", "design", "--", "/nonexistent/cmd"], envFor(team.api_key)).exited;
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("[switchboard] design failed: could not start: spawn /nonexistent/cmd ENOENT\n");
    expect(run.stdout).toContain("\ndesign failed: could not start: spawn /nonexistent/cmd ENOENT\n");
  }, 60_000);

  it("the step ends when the agent exits: the children it left (holding its output or not, ignoring SIGTERM or not) are stopped, not waited for", async () => {
    const team = await setUpTeam(worker, "leftover", "t1");
    // One child holds the agent's stdout; the other ignores SIGTERM and writes nowhere.
    const agent = ["sh", "-c", `sleep 30 & a=$!; (trap "" TERM; exec sleep 30) >/dev/null 2>&1 & echo "children $a $!"; exit 0`];
    const started = Date.now();
    const run = await startCli(["run", "--session", "leftover", "--topic", "t1", "design", "--", ...agent], envFor(team.api_key)).exited;
    const elapsed = Date.now() - started;
    const children = (/children (\d+) (\d+)/.exec(run.stdout) ?? []).slice(1).map(Number);
    leftovers.push(...children);
    expect(run.code).toBe(0);
    expect(children).toHaveLength(2);
    expect(elapsed).toBeLessThan(10_000);
    for (const pid of children) expect(alive(pid), `child ${pid}`).toBe(false);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/leftover/topics/t1", team.api_key), (t) => t.steps?.design?.status === "completed");
    expect(topic.steps.design.duration_ms).toBeLessThan(5_000);
  }, 60_000);
});
