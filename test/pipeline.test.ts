import { describe, expect, it } from "vitest";
import { SseReader, call, createSession, createTeam, eventually, postEvents, summary, uid } from "./helpers";

describe("callback → queue → Durable Object → SSE", () => {
  it("delivers a step event to a topic stream subscriber and updates the summary", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const res = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1", hypothesis: "momentum" } });
    expect(res.status).toBe(201);
    await res.json();

    const stream = await call(`/v1/sessions/${sid}/topics/t1/stream`, { key: team.api_key });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    const sse = new SseReader(stream);
    expect((await sse.next()).retry).toBeGreaterThan(0);
    const snapshot = await sse.nextEvent();
    expect(snapshot.event).toBe("snapshot");
    expect(snapshot.id).toBe("0");

    const accepted = await postEvents(team.api_key, [{ id: uid("e"), type: "step_started", session_id: sid, topic_id: "t1", data: { step: "design" } }]);
    expect(accepted.status).toBe(202);
    expect(await accepted.json()).toMatchObject({ accepted: 1 });

    const event = await sse.nextEvent();
    expect(event.event).toBe("step_started");
    expect(event.id).toBe("1");
    expect(JSON.parse(event.data)).toMatchObject({ type: "step_started", data: { step: "design" } });
    await sse.close();

    const s = await summary(team.api_key, sid);
    expect(s.topics[0]).toMatchObject({ id: "t1", status: "running", current_step: "design" });
    expect(s.topics[0].steps.design).toMatchObject({ status: "running", max_turns: 15 });
  });
});

describe("callbacks posted together", () => {
  it("are all accepted and applied when many requests are in flight at once", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const added = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1" } });
    expect(added.status).toBe(201);
    await added.json();

    const ids = Array.from({ length: 40 }, () => uid("e"));
    const answers = await Promise.all(ids.map((id) => postEvents(team.api_key, [{ id, type: "usage.reported", session_id: sid, topic_id: "t1", data: { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }] } }])));
    expect(answers.map((r) => r.status)).toEqual(ids.map(() => 202));
    await Promise.all(answers.map((r) => r.json()));

    const sse = new SseReader(await call(`/v1/sessions/${sid}/topics/t1/stream?last_event_id=0`, { key: team.api_key }));
    const got = new Set<string>();
    while (got.size < ids.length) {
      const event = await sse.nextEvent();
      if (event.event === "usage.reported") got.add(JSON.parse(event.data).id);
    }
    await sse.close();
    expect([...got].sort()).toEqual([...ids].sort());
  });
});
