import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevWorker, eventually, getJson, setUpTeam, startDevWorker } from "./dev-worker";
import { nodeAgent, startCli, startProxy } from "./runner-helpers";

// The turn budget the runner gives an agent: the topic's own, unless `-t` overrides it.

let worker: DevWorker;
beforeAll(async () => {
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  await worker?.stop();
});

const envFor = (key: string, url = worker.url) => ({ SWITCHBOARD_URL: url, SWITCHBOARD_API_KEY: key });
const agent = nodeAgent(`console.log("budget " + process.env.SWITCHBOARD_MAX_TURNS); console.log(JSON.stringify({ turns: 2 }))`);

/** A session with a topic whose explore budget is 30 (the default is 50). */
async function topicWith30(sid: string) {
  const team = await setUpTeam(worker, sid, "plain");
  await team.post(`/v1/sessions/${sid}/topics`, team.api_key, { id: "t30", max_turns: { explore: 30 } });
  return team;
}

describe("switchboard run: turn budgets", () => {
  it("without -t, the agent gets the topic's own budget and the topic keeps it", async () => {
    const team = await topicWith30("budget");
    const run = await startCli(["run", "--session", "budget", "--topic", "t30", "explore", "--", ...agent], envFor(team.api_key)).exited;
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("budget 30\n");
    expect(run.stdout).toMatch(/│ explore\s+│ completed │ 2\/30 /);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/budget/topics/t30", team.api_key), (t) => t.steps?.explore?.status === "completed");
    expect(topic.steps.explore).toMatchObject({ turns: 2, max_turns: 30 });
  }, 60_000);

  it("-t overrides the topic's budget, for the agent and on the topic", async () => {
    const team = await topicWith30("override");
    const run = await startCli(["run", "--session", "override", "--topic", "t30", "explore", "-t", "7", "--", ...agent], envFor(team.api_key)).exited;
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("budget 7\n");
    const topic = await eventually(() => getJson(worker, "/v1/sessions/override/topics/t30", team.api_key), (t) => t.steps?.explore?.status === "completed");
    expect(topic.steps.explore.max_turns).toBe(7);
  }, 60_000);

  it("when the topic cannot be read, the agent gets the default and the topic's budget stays", async () => {
    const team = await topicWith30("unread");
    const proxy = await startProxy(worker.url, (req) => (req.method === "GET" && req.url?.startsWith("/v1/sessions/unread/topics/t30") ? { status: 403 } : undefined));
    try {
      const run = await startCli(["run", "--session", "unread", "--topic", "t30", "explore", "--", ...agent], envFor(team.api_key, proxy.url)).exited;
      expect(run.code).toBe(0);
      expect(run.stdout).toContain("budget 50\n");
      expect(run.stdout).toMatch(/could not read the topic's turn budgets \(HTTP 403.*\); using the defaults/);
      const topic = await eventually(() => getJson(worker, "/v1/sessions/unread/topics/t30", team.api_key), (t) => t.steps?.explore?.status === "completed");
      expect(topic.steps.explore.max_turns).toBe(30);
    } finally {
      await proxy.close();
    }
  }, 60_000);
});
