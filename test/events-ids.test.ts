import { describe, expect, it } from "vitest";
import { type AgentEvent, parseCallbackBody } from "../src/domain/events";
import { applySessionEvent, newSession } from "../src/domain/session";
import { applyTopicEvent, newTopic } from "../src/domain/topic";
import { clientId } from "../src/lib/ids";
import { call, createTeam, errorPaths, expectProblem, postEvents, sessionWithTopic, uid } from "./helpers";

const BAD = ["t 1/x:y", "a:b", "a/b", "has space", "-dash", ".dot", "x".repeat(129), "ünï", ""];
const GOOD = ["t1", "T.1_x-2", "constructor", "x".repeat(128)];
const NOW = "2026-11-22T10:00:00.000Z";

describe("event ids that name sessions, topics and alphas follow the routes' id rule", () => {
  it("validates session_id, topic_id, data.topic_id and data.alpha_id as the routes' ids", () => {
    const events = (v: string) => [
      { id: "e1", type: "step_started", session_id: v, topic_id: "t", data: { step: "design" } },
      { id: "e2", type: "step_started", session_id: "s", topic_id: v, data: { step: "design" } },
      { id: "e3", type: "topic_added", session_id: "s", data: { topic_id: v } },
      { id: "e4", type: "alpha.registered", session_id: "s", topic_id: "t", data: { alpha_id: v } },
      { id: "e5", type: "alpha.evaluated", session_id: "s", topic_id: "t", data: { alpha_id: v, metrics: {}, passed: true } },
    ];
    for (const v of BAD) {
      expect(clientId.safeParse(v).success, v).toBe(false);
      const out = parseCallbackBody({ events: events(v) });
      expect(out.success, v).toBe(false);
      if (!out.success) expect([...new Set(out.error.issues.map((i) => i.path.join(".")))].sort(), v).toEqual(["events.0.session_id", "events.1.topic_id", "events.2.data.topic_id", "events.3.data.alpha_id", "events.4.data.alpha_id"]);
    }
    for (const v of GOOD) expect(parseCallbackBody({ events: events(v) }).success, v).toBe(true);
    // Event ids are idempotency keys, not names a route reaches: they keep the loose rule.
    expect(parseCallbackBody({ id: "agent:1 2/3", type: "insight_started", session_id: "s", data: { insight_id: "any thing" } }).success).toBe(true);
    // Except the platform's own prefixes (src/domain/events.ts, PLATFORM_EVENT_ID_PREFIXES).
    expect(parseCallbackBody({ id: "operator:1 2/3", type: "insight_started", session_id: "s", data: { insight_id: "any thing" } }).success).toBe(false);
  });

  it("POST /v1/callbacks answers 400 for a topic no route could reach, naming the field", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    const problem = await expectProblem(
      await postEvents(team.api_key, [
        { id: uid("e"), type: "step_started", session_id: sid, topic_id: "t 1/x:y", data: { step: "design" } },
        { id: uid("e"), type: "topic_added", session_id: sid, data: { topic_id: "t 1/x:y" } },
      ]),
      400,
    );
    expect(errorPaths(problem).sort()).toEqual(["events.0.topic_id", "events.1.data.topic_id"]);
    // The route that would show it refuses the id too: nothing was created that it cannot reach.
    await expectProblem(await call(`/v1/sessions/${sid}/topics/${encodeURIComponent("t 1/x:y")}`, { key: team.api_key }), 400);
  });

  it("reducers refuse, not throw on, an event queued before the rule was tightened", () => {
    const old = (type: AgentEvent["type"], data: Record<string, unknown>): AgentEvent => ({ id: uid("e"), type, session_id: "s1", topic_id: "t1", data });
    const t = applyTopicEvent(newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW }), old("alpha.registered", { alpha_id: "a b" }), NOW);
    expect(t).toMatchObject({ accepted: false, reason: expect.stringContaining("data.alpha_id") });
    const s = applySessionEvent(newSession({ id: "s1", team_id: "a", now: NOW }), old("topic_added", { topic_id: "t 1/x:y" }), NOW);
    expect(s).toMatchObject({ accepted: false, reason: expect.stringContaining("data.topic_id") });
    expect(s.state.rejected_events).toHaveLength(1);
  });
});
