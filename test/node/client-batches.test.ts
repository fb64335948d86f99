import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SwitchboardClient } from "../../cli/client";
import { type DevWorker, eventually, getJson, setUpTeam, startDevWorker } from "./dev-worker";

// How the agents' client cuts a list of events into requests the API takes.

let worker: DevWorker;
beforeAll(async () => {
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  await worker?.stop();
});

describe("agent client batches", () => {
  it("100 events of 15 KB each (1.5 MB, over the API's 1 MiB body) are all delivered", async () => {
    const team = await setUpTeam(worker, "big", "t1");
    await team.post("/v1/sessions/big/topics", team.api_key, { id: "t2" });
    const bodies: number[] = [];
    const client = new SwitchboardClient({
      baseUrl: worker.url,
      apiKey: team.api_key,
      retries: 0,
      fetch: (input, init) => {
        if (typeof init?.body === "string") bodies.push(Buffer.byteLength(init.body));
        return fetch(input, init);
      },
    });
    // 5,000 "€" are 5,000 characters but 15,000 bytes: the limit is on bytes. Half on each
    // topic, as a topic keeps at most 1 MiB of alphas.
    const expression = (i: number) => `${i} ${"€".repeat(5000)}`;
    const events = Array.from({ length: 100 }, (_, i) => ({ id: `big-${i}`, type: "alpha.registered" as const, session_id: "big", topic_id: i < 50 ? "t1" : "t2", data: { alpha_id: `a${i}`, expression: expression(i) } }));
    expect(Buffer.byteLength(JSON.stringify({ events }))).toBeGreaterThan(1024 * 1024);

    expect(await client.send(events)).toEqual({ delivered: "callback", accepted: 100 });
    expect(bodies.length).toBeGreaterThan(1);
    expect(Math.max(...bodies)).toBeLessThanOrEqual(1024 * 1024);
    const alphas = await eventually(() => getJson(worker, "/v1/sessions/big/alphas?limit=200", team.api_key), (l) => l.items?.length === 100, 30_000);
    const byId = new Map((alphas.items as { id: string; expression: string | null }[]).map((a) => [a.id, a.expression]));
    for (let i = 0; i < 100; i++) expect(byId.get(`a${i}`) === expression(i), `alpha a${i}`).toBe(true);
  }, 90_000);

  it("an event over 1 MiB on its own is refused, naming it, and nothing of the list is sent", async () => {
    let requests = 0;
    const client = new SwitchboardClient({
      baseUrl: worker.url,
      apiKey: "unused",
      fetch: (input, init) => {
        requests += 1;
        return fetch(input, init);
      },
    });
    const small = { id: "small", type: "alpha.registered" as const, session_id: "big", topic_id: "t1", data: { alpha_id: "s" } };
    const huge = { id: "huge", type: "alpha.registered" as const, session_id: "big", topic_id: "t1", data: { alpha_id: "h", notes: "x".repeat(1024 * 1024) } };
    await expect(client.send([small, huge])).rejects.toThrow(/event huge is \d+ bytes as JSON, over the API's 1048576-byte \(1 MiB\) limit on a request body; nothing was sent/);
    expect(requests).toBe(0);
  });
});
