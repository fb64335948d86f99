import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SwitchboardClient } from "../../cli/client";
import { runSteps } from "../../cli/run";
import { type DevWorker, eventually, getJson, setUpTeam, startDevWorker } from "./dev-worker";
import { nodeAgent, readWorkspace, sleep, startCli, startProxy } from "./runner-helpers";

// The runner's handling of the agent's output: decoding, and the chat log in the workspace.

let worker: DevWorker;
beforeAll(async () => {
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  await worker?.stop();
});

const envFor = (key: string, url = worker.url) => ({ SWITCHBOARD_URL: url, SWITCHBOARD_API_KEY: key });

const replacements = (s: string) => s.split("\uFFFD").length - 1;

describe("switchboard run: the agent's output", () => {
  it("keeps multibyte characters whole when they straddle pipe chunks", async () => {
    const team = await setUpTeam(worker, "utf8", "t1");
    // 300,000 bytes: the pipe hands them over in 64 KiB chunks, and 65,536 is not a multiple of 3.
    const text = `${"€".repeat(100_000)}\n`;
    const run = await startCli(["run", "--session", "utf8", "--topic", "t1", "design", "--", ...nodeAgent(`process.stdout.write("€".repeat(100000) + "\\n")`)], envFor(team.api_key)).exited;
    expect(run.code).toBe(0);
    // Compared as counts: a failure should not print 300 KB of euros.
    expect(replacements(run.stdout)).toBe(0);
    expect(run.stdout.split("€").length - 1).toBe(100_000);
    const log = await readWorkspace(worker.url, team.api_key, "utf8", "t1", "logs/design.log");
    expect(log.status).toBe(200);
    expect(replacements(log.text)).toBe(0);
    expect(log.text === text).toBe(true);
  }, 60_000);

  it("figures no API would take (1e400 turns, 1e20, a 300-character tool, 250 tools) are left out, and the step still ends", async () => {
    const team = await setUpTeam(worker, "odd-figures", "t1");
    const script = [
      `console.log('{"turns": 1e400}');`,
      `console.log('{"turns": 99999999999999999999, "cost_usd": 1e400}');`,
      `console.log(JSON.stringify({ tool: "t".repeat(300) }));`,
      `for (let i = 0; i < 250; i++) console.log(JSON.stringify({ tool: "tool" + i }));`,
      `console.log('{"turns": 3, "cost_usd": 0.5}');`,
      `require("node:fs").writeFileSync(process.env.SWITCHBOARD_SUMMARY_FILE, JSON.stringify({ turns: 1e20 }));`,
    ].join("\n");
    const run = await startCli(["run", "--session", "odd-figures", "--topic", "t1", "explore", "--", ...nodeAgent(script)], envFor(team.api_key)).exited;
    expect(run.stderr).not.toMatch(/error:/);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/│ explore\s+│ completed │ 3\/50/);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/odd-figures/topics/t1", team.api_key), (t) => t.steps?.explore?.status === "completed");
    expect(topic.steps.explore).toMatchObject({ turns: 3, cost_usd: 0.5 });
    expect(topic.steps.explore.tools).toHaveLength(200);
    expect(topic.steps.explore.tools.some((t: { name: string }) => t.name === "t".repeat(200))).toBe(true);
  }, 60_000);

  it("uploads the chat log as it goes, while the agent still runs", async () => {
    const team = await setUpTeam(worker, "asitgoes", "t1");
    const run = startCli(["run", "--session", "asitgoes", "--topic", "t1", "design", "--", ...nodeAgent(`console.log("first line"); setTimeout(() => console.log("last line"), 4000)`)], {
      ...envFor(team.api_key),
      SWITCHBOARD_LOG_UPLOAD_MS: "200",
    });
    await run.waitFor((o) => o.includes("first line"), 10_000, "first line");
    let log = { status: 0, text: "" };
    for (const until = Date.now() + 3000; Date.now() < until && !log.text.includes("first line"); await sleep(100)) {
      log = await readWorkspace(worker.url, team.api_key, "asitgoes", "t1", "logs/design.log");
    }
    expect(log.text).toBe("first line\n");
    expect(run.child.exitCode).toBeNull(); // the agent is still sleeping
    expect((await run.exited).code).toBe(0);
    expect((await readWorkspace(worker.url, team.api_key, "asitgoes", "t1", "logs/design.log")).text).toBe("first line\nlast line\n");
  }, 60_000);

  it("the final upload waits for a slow periodic one, so the log ends complete", async () => {
    const team = await setUpTeam(worker, "slowlog", "t1");
    // The first periodic upload (the log with "line 1" only) is held 2.5 s on its way to the
    // Worker; the agent prints "line 2" and exits meanwhile. Were the uploads not one at a
    // time, the final one would land first and the held one would overwrite it.
    let held = false;
    const proxy = await startProxy(worker.url, (req) => {
      if (req.method !== "PUT" || !req.url?.endsWith("/workspace/logs/design.log") || held) return undefined;
      held = true;
      return { delayMs: 2500 };
    });
    try {
      const run = await startCli(["run", "--session", "slowlog", "--topic", "t1", "design", "--", ...nodeAgent(`console.log("line 1"); setTimeout(() => console.log("line 2"), 800)`)], {
        ...envFor(team.api_key, proxy.url),
        SWITCHBOARD_LOG_UPLOAD_MS: "200",
      }).exited;
      expect(run.code).toBe(0);
      expect(held).toBe(true);
      await sleep(3000); // past the held upload, had it been left running
      expect((await readWorkspace(worker.url, team.api_key, "slowlog", "t1", "logs/design.log")).text).toBe("line 1\nline 2\n");
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it("a reader that goes away (`| head -1`) ends the printing, not the run: the step is reported and its whole log stored", async () => {
    const team = await setUpTeam(worker, "epipe", "t1");
    const run = startCli(["run", "--session", "epipe", "--topic", "t1", "design", "--", ...nodeAgent(`let i = 0; const t = setInterval(() => { console.log("line " + i++); if (i === 30) clearInterval(t); }, 50)`)], envFor(team.api_key));
    await run.waitFor((o) => o.includes("line 0"), 15_000, "the first line");
    run.child.stdout?.destroy(); // as head does once it has its line
    const end = await run.exited;
    expect(end.stderr).not.toMatch(/EPIPE|error/);
    expect(end.code).toBe(0);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/epipe/topics/t1", team.api_key), (t) => t.steps?.design?.status === "completed");
    expect(topic.steps.design.status).toBe("completed");
    const log = await readWorkspace(worker.url, team.api_key, "epipe", "t1", "logs/design.log");
    expect(log.text).toBe(Array.from({ length: 30 }, (_, i) => `line ${i}\n`).join(""));
  }, 60_000);

  describe("a long chat log", () => {
    // 30 lines of 200 bytes, 30 ms apart, with parts of 1,000 bytes: each pipe read is a line or two.
    const lines = Array.from({ length: 30 }, (_, i) => `line ${String(i).padStart(2, "0")} ${"x".repeat(191)}`);
    const agent = nodeAgent(`const lines = ${JSON.stringify(lines)}; let i = 0; const t = setInterval(() => { console.log(lines[i++]); if (i === lines.length) clearInterval(t); }, 30)`);
    const printed = lines.map((l) => `${l}\n`).join("");

    /** A client that records the size of each chat log upload. */
    const recording = (key: string, puts: number[]) =>
      new SwitchboardClient({
        baseUrl: worker.url,
        apiKey: key,
        fetch: (input, init) => {
          if (init?.method === "PUT" && init.body instanceof Uint8Array) puts.push(init.body.byteLength);
          return fetch(input, init);
        },
      });
    const listed = async (key: string, sid: string) => {
      const res = await fetch(`${worker.url}/v1/sessions/${sid}/topics/t1/workspace?prefix=logs/`, { headers: { Authorization: `Bearer ${key}` } });
      return ((await res.json()) as { items: { path: string }[] }).items.map((i) => i.path).sort();
    };

    it("is stored in parts, and a tick uploads only the part that changed, never the whole log again", async () => {
      const team = await setUpTeam(worker, "parts", "t1");
      const puts: number[] = [];
      const outcomes = await runSteps(recording(team.api_key, puts), { sessionId: "parts", topicId: "t1", steps: ["design"], command: agent, logUploadMs: 50, logPartBytes: 1000, out: () => {} });
      expect(outcomes[0]?.status).toBe("completed");
      const paths = await listed(team.api_key, "parts");
      expect(paths.length).toBeGreaterThanOrEqual(6);
      expect(paths).toContain("logs/design.log");
      let joined = "";
      for (let n = 1; n <= paths.length; n++) {
        const part = await readWorkspace(worker.url, team.api_key, "parts", "t1", n === 1 ? "logs/design.log" : `logs/design.${n}.log`);
        expect(part.status, `part ${n}`).toBe(200);
        joined += part.text;
      }
      expect(joined).toBe(printed);
      expect(Math.max(...puts)).toBeLessThanOrEqual(1000 + 2 * 201);
    }, 60_000);

    it("past what the workspace keeps, holds the first part and the latest; a later run's log replaces all of the earlier one's", async () => {
      const team = await setUpTeam(worker, "runaway", "t1");
      const notes: string[] = [];
      const options = { sessionId: "runaway", topicId: "t1", steps: ["design" as const], logUploadMs: 50, logPartBytes: 1000, logMaxBytes: 3000, out: (t: string) => void notes.push(t) };
      await runSteps(recording(team.api_key, []), { ...options, command: agent });
      const paths = await listed(team.api_key, "runaway");
      expect(paths).toHaveLength(3);
      expect(paths).toContain("logs/design.log");
      expect(paths).not.toContain("logs/design.2.log");
      const first = await readWorkspace(worker.url, team.api_key, "runaway", "t1", "logs/design.log");
      expect(first.text.startsWith(`${lines[0]}\n`)).toBe(true);
      const last = paths.filter((p) => p !== "logs/design.log").sort((a, b) => Number(a.split(".")[1]) - Number(b.split(".")[1])).at(-1) as string;
      expect((await readWorkspace(worker.url, team.api_key, "runaway", "t1", last)).text.endsWith(`${lines.at(-1)}\n`)).toBe(true);
      expect(notes.join("")).toMatch(/chat log: past 3 parts, the parts after the first are removed oldest first \(from logs\/design\.2\.log\)/);

      await runSteps(recording(team.api_key, []), { ...options, command: nodeAgent(`console.log("short")`) });
      expect(await listed(team.api_key, "runaway")).toEqual(["logs/design.log"]);
      expect((await readWorkspace(worker.url, team.api_key, "runaway", "t1", "logs/design.log")).text).toBe("short\n");
    }, 60_000);
  });
});
