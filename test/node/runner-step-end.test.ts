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
});
