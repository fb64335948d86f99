import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevWorker, eventually, getJson, setUpTeam, startDevWorker } from "./dev-worker";

/**
 * Callbacks posted at the same time share queue batches (src/queue/group-send.ts): one
 * request sends the others' messages. Only the real runtime runs each request in its own
 * context, where a request resumed in another's context fails its response, so this runs
 * against `wrangler dev` rather than in the workerd test pool. It fails when a waiting request
 * awaits the sending request's promise (or one derived from it); a waiter's own promise that
 * the sender resolved failed only at the bench's load (about 700/s straight to the runtime),
 * which this does not reach (1,920 callbacks through the proxy passed twice).
 */

let worker: DevWorker;
beforeAll(async () => {
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  await worker?.stop();
});

describe("callbacks posted by many agents at once, under wrangler dev", () => {
  it("answers every one 202 and applies every event once", async () => {
    const team = await setUpTeam(worker, "s-many", "t-many");
    const senders = 32;
    const perSender = 15;
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: senders }, async () => {
        for (let i = 0; i < perSender; i++) {
          const event = { id: randomUUID(), type: "usage.reported", session_id: team.sessionId, topic_id: team.topicId, data: { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }] } };
          const res = await fetch(`${worker.url}/v1/callbacks`, { method: "POST", headers: { Authorization: `Bearer ${team.api_key}`, "Content-Type": "application/json" }, body: JSON.stringify(event) });
          await res.arrayBuffer();
          statuses.push(res.status);
        }
      }),
    );
    const total = senders * perSender;
    expect(statuses.filter((s) => s !== 202)).toEqual([]);
    expect(statuses).toHaveLength(total);
    const calls = (topic: any) => topic.steps?.explore?.tools?.find((t: { name: string }) => t.name === "bash")?.calls ?? 0;
    const topic = await eventually(() => getJson(worker, `/v1/sessions/${team.sessionId}/topics/${team.topicId}`, team.api_key), (t) => calls(t) >= total, 30_000);
    expect(calls(topic)).toBe(total);
  }, 90_000);
});
