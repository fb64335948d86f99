import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevWorker, setUpTeam, startDevWorker } from "./dev-worker";
import { nodeAgent, readWorkspace, startCli } from "./runner-helpers";

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
});
