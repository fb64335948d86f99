import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { TopicHub } from "../durable-objects/topic-hub";
import type { AgentEvent } from "../src/domain/events";
import { SseReader } from "./helpers";

const init = { id: "t1", session_id: "s1", team_id: "team-fanout" };
const event = (id: string, step: string): AgentEvent => ({ id, type: "step_started", session_id: "s1", topic_id: "t1", data: { step } });

describe("hub fan-out", () => {
  it("a stream opened while events wait for the next flush gets each of them once", async () => {
    const stub = env.TOPIC_HUB.getByName(`team-fanout:s1:${crypto.randomUUID()}`);
    await stub.apply(init, [event("e0", "design")]);
    const first = new SseReader(await stub.fetch("https://hub/stream"));
    expect((await first.nextEvent()).event).toBe("snapshot");

    // Inside the object, with no await in between: e1 is applied (and only queued for the
    // next flush), then a second stream resumes from seq 1, so its replay already has e1.
    const resumedIds = await runInDurableObject(stub, async (hub: TopicHub) => {
      await hub.apply(init, [event("e1", "prep")]);
      const resumed = new SseReader(await hub.fetch(new Request("https://hub/stream", { headers: { "Last-Event-ID": "1" } })));
      const replayed = await resumed.nextEvent();
      await new Promise((r) => setTimeout(r, 50)); // the pending flush has run by now
      await hub.apply(init, [event("e2", "explore")]);
      const next = await resumed.nextEvent();
      await resumed.close();
      return [replayed.id, next.id];
    });
    expect(resumedIds).toEqual(["2", "3"]);
    // The stream that was already open got e1 in that flush, then e2.
    expect([(await first.nextEvent()).id, (await first.nextEvent()).id]).toEqual(["2", "3"]);
    await first.close();
  });
});
