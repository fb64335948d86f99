import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { APPLIED_TTL_MS } from "../durable-objects/hub";
import type { TopicHub } from "../durable-objects/topic-hub";
import { type AgentEvent } from "../src/domain/events";

const init = { id: "t1", session_id: "s1", team_id: "team-retention" };
const event = (id: string): AgentEvent => ({ id, type: "step_started", session_id: "s1", topic_id: "t1", data: { step: "design" } });

describe("applied event ids", () => {
  it("are kept at least 14 days, so a re-sent event is a duplicate until then, and forgotten after", async () => {
    const stub = env.TOPIC_HUB.getByName(`team-retention:s1:${crypto.randomUUID()}`);
    const first = await stub.apply(init, [event("old"), event("recent")]);
    expect(first.results.map((r) => r.status)).toEqual(["applied", "applied"]);
    // Age one id past the TTL and the other to just inside it.
    await runInDurableObject(stub, (_hub: TopicHub, state) => {
      state.storage.sql.exec("UPDATE hub_applied SET applied_at = ? WHERE event_id = 'old'", Date.now() - APPLIED_TTL_MS - 1000);
      state.storage.sql.exec("UPDATE hub_applied SET applied_at = ? WHERE event_id = 'recent'", Date.now() - APPLIED_TTL_MS + 60_000);
    });
    expect(APPLIED_TTL_MS).toBeGreaterThanOrEqual(14 * 24 * 3600 * 1000);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await stub.storageCounts()).applied).toBe(1);
    const again = await stub.apply(init, [event("recent")]);
    expect(again.results).toEqual([{ event_id: "recent", status: "duplicate" }]);
    // The alarm stays scheduled while ids are kept.
    expect(await runInDurableObject(stub, (_hub: TopicHub, state) => state.storage.getAlarm())).not.toBeNull();
  });
});
