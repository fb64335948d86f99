import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SwitchboardClient } from "../../cli/client";
import { runSteps } from "../../cli/run";
import { type DevWorker, eventually, getJson, setUpTeam, startDevWorker } from "./dev-worker";
import { nodeAgent, readWorkspace, startProxy } from "./runner-helpers";

// How a step ends: the time it reports, and the chat log it leaves in the workspace.

let worker: DevWorker;
beforeAll(async () => {
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  await worker?.stop();
});

const quiet = { out: () => {}, err: () => {} };

describe("switchboard run: the step's end", () => {
  it("reports the agent's time, not the final chat log upload's", async () => {
    const team = await setUpTeam(worker, "slowput", "t1");
    // Every chat log upload is held 5 s on its way to the Worker; the agent exits at once.
    // Its step cannot have taken the 5 s unless the upload was counted in it (a correctness
    // check, not a speed bound: the agent alone needs far less than the delay).
    const delayMs = 5000;
    let delayed = 0;
    const proxy = await startProxy(worker.url, (req) => {
      if (req.method !== "PUT" || !req.url?.includes("/workspace/logs/")) return undefined;
      delayed += 1;
      return { delayMs };
    });
    try {
      const client = new SwitchboardClient({ baseUrl: proxy.url, apiKey: team.api_key, timeoutMs: 30_000 });
      const outcomes = await runSteps(client, { sessionId: "slowput", topicId: "t1", steps: ["design"], command: nodeAgent(`console.log("done")`), ...quiet });
      expect(delayed).toBeGreaterThan(0);
      expect(outcomes[0]?.status).toBe("completed");
      expect(outcomes[0]?.duration_ms).toBeLessThan(delayMs);
      const topic = await eventually(() => getJson(worker, "/v1/sessions/slowput/topics/t1", team.api_key), (t) => t.steps?.design?.status === "completed");
      expect(topic.steps.design.duration_ms).toBe(outcomes[0]?.duration_ms);
      expect((await readWorkspace(worker.url, team.api_key, "slowput", "t1", "logs/design.log")).text).toBe("done\n");
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it("a re-run of a failed step shows its own turns, cost and tool calls, as the runner's table does", async () => {
    const team = await setUpTeam(worker, "rerun-usage", "t1");
    const client = new SwitchboardClient({ baseUrl: worker.url, apiKey: team.api_key });
    const options = { sessionId: "rerun-usage", topicId: "t1", steps: ["explore" as const], ...quiet };
    const first = await runSteps(client, { ...options, command: nodeAgent(`console.log('{"turns":5}'); console.log('{"cost_usd":0.5}'); console.log('{"tool":"bash"}'); process.exit(3)`) });
    expect(first[0]).toMatchObject({ status: "failed", turns: 5, cost_usd: 0.5 });
    await eventually(() => getJson(worker, "/v1/sessions/rerun-usage/topics/t1", team.api_key), (t) => t.steps?.explore?.error === "exit code 3");
    const again = await runSteps(client, { ...options, command: nodeAgent(`console.log('{"turns":1,"cost_usd":0.1,"tool":"bash"}'); process.exit(4)`) });
    expect(again[0]).toMatchObject({ status: "failed", turns: 1, cost_usd: 0.1 });
    const topic = await eventually(() => getJson(worker, "/v1/sessions/rerun-usage/topics/t1", team.api_key), (t) => t.steps?.explore?.error === "exit code 4");
    expect(topic.steps.explore).toMatchObject({ status: "failed", turns: 1, cost_usd: 0.1, tools: [{ name: "bash", calls: 1 }] });
  }, 60_000);

  it("a re-run whose agent prints nothing leaves an empty log, not the earlier run's", async () => {
    const team = await setUpTeam(worker, "rerun", "t1");
    const client = new SwitchboardClient({ baseUrl: worker.url, apiKey: team.api_key });
    const options = { sessionId: "rerun", topicId: "t1", steps: ["design" as const], ...quiet };
    expect((await runSteps(client, { ...options, command: nodeAgent(`console.log("OLD")`) }))[0]?.status).toBe("completed");
    expect((await readWorkspace(worker.url, team.api_key, "rerun", "t1", "logs/design.log")).text).toBe("OLD\n");

    const again = await runSteps(client, { ...options, command: nodeAgent(`process.exit(7)`) });
    expect(again[0]).toMatchObject({ status: "failed", detail: "exit code 7" });
    const log = await readWorkspace(worker.url, team.api_key, "rerun", "t1", "logs/design.log");
    expect(log.text).not.toContain("OLD");
    expect(log).toEqual({ status: 200, text: "" });
  }, 60_000);

  it("a re-run whose output could not be stored removes the earlier run's log rather than leave it as its own", async () => {
    const team = await setUpTeam(worker, "rerun-refused", "t1");
    const options = { sessionId: "rerun-refused", topicId: "t1", steps: ["design" as const], ...quiet };
    await runSteps(new SwitchboardClient({ baseUrl: worker.url, apiKey: team.api_key }), { ...options, command: nodeAgent(`console.log("OLD")`) });
    expect((await readWorkspace(worker.url, team.api_key, "rerun-refused", "t1", "logs/design.log")).text).toBe("OLD\n");

    // The second run's uploads are refused (a 400 is not retried); its other calls pass.
    const proxy = await startProxy(worker.url, (req) => (req.method === "PUT" && req.url?.includes("/workspace/logs/") ? { status: 400 } : undefined));
    try {
      const notes: string[] = [];
      const again = await runSteps(new SwitchboardClient({ baseUrl: proxy.url, apiKey: team.api_key }), { ...options, command: nodeAgent(`console.log("NEW")`), out: (t) => void notes.push(t) });
      expect(again[0]?.status).toBe("completed");
      expect(notes.join("")).toMatch(/chat log upload failed/);
    } finally {
      await proxy.close();
    }
    expect((await readWorkspace(worker.url, team.api_key, "rerun-refused", "t1", "logs/design.log")).status).toBe(404);
  }, 60_000);
});
