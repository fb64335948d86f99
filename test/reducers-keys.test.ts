import { describe, expect, it } from "vitest";
import type { AgentEvent } from "../src/domain/events";
import { applySessionEvent, newSession } from "../src/domain/session";
import { applyTopicEvent, newTopic, type TopicState, topicSummary } from "../src/domain/topic";

const NOW = "2026-11-22T10:00:00.000Z";
const ev = (type: AgentEvent["type"], data: Record<string, unknown>, id = `${type}-${Math.random()}`): AgentEvent => ({ id, type, session_id: "s1", topic_id: "t1", occurred_at: NOW, data });
// Alpha ids follow the routes' id rule (no leading "_"); insight ids may be any string.
const KEYS = ["constructor", "toString", "hasOwnProperty", "valueOf", "isPrototypeOf"];
const INSIGHT_KEYS = [...KEYS, "__proto__"];

describe("reducers: client-chosen keys are own properties only", () => {
  it("registers and evaluates alphas named like Object.prototype's members, with their ids, through a JSON round trip", () => {
    let t: TopicState = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    for (const k of KEYS) {
      t = applyTopicEvent(t, ev("alpha.evaluated", { alpha_id: k, metrics: { sharpe: 2 }, passed: true }), NOW).state;
      t = applyTopicEvent(t, ev("alpha.registered", { alpha_id: k, name: `n-${k}` }), NOW).state;
      // Stored as JSON by the hub between applies.
      t = JSON.parse(JSON.stringify(t)) as TopicState;
    }
    const alphas = topicSummary(t).alphas;
    expect(alphas.map((a) => a.id).sort()).toEqual([...KEYS].sort());
    for (const a of alphas) expect(a).toMatchObject({ name: `n-${a.id}`, passed: true, metrics: { sharpe: 2 } });
    expect(Object.getPrototypeOf(t.alphas)).toBe(Object.prototype);
    // "__proto__" is no alpha id at all: refused, and nothing is stored for it.
    const proto = applyTopicEvent(t, ev("alpha.registered", { alpha_id: "__proto__", name: "p" }), NOW);
    expect(proto.accepted).toBe(false);
    expect(topicSummary(proto.state).alphas).toHaveLength(KEYS.length);
  });

  it("leaves out an id-less alpha a topic stored before the fix holds", () => {
    const t = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    const poisoned = { ...t, alphas: { undefined: { name: "x", expression: null, registered_at: NOW } } } as unknown as TopicState;
    expect(topicSummary(poisoned).alphas).toEqual([]);
  });

  it("keeps insights named like Object.prototype's members", () => {
    let s = newSession({ id: "s1", team_id: "a", now: NOW });
    for (const k of INSIGHT_KEYS) {
      s = applySessionEvent(s, ev("insight_started", { insight_id: k, title: `t-${k}` }), NOW).state;
      s = applySessionEvent(s, ev("insight_failed", { insight_id: k, error: "boom" }), NOW).state;
      s = JSON.parse(JSON.stringify(s));
    }
    for (const k of INSIGHT_KEYS) expect(Object.hasOwn(s.insights, k) && s.insights[k]).toEqual({ id: k, title: `t-${k}`, status: "failed", error: "boom" });
  });
});
