import { describe, expect, it } from "vitest";
import type { AgentEvent } from "../src/domain/events";
import { applySessionEvent, newSession, type SessionState } from "../src/domain/session";
import { applyTopicEvent, MAX_ALPHA_BYTES, newTopic, type TopicState, topicSummary } from "../src/domain/topic";

const NOW = "2026-11-22T10:00:00.000Z";
let n = 0;
const ev = (type: AgentEvent["type"], data: Record<string, unknown>): AgentEvent => ({ id: `e${++n}`, type, session_id: "s1", topic_id: "t1", occurred_at: NOW, data });
const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)).length;

describe("topic reducer: the alphas a topic keeps are bounded (its state is one SQLite row, 2 MB at most on Cloudflare)", () => {
  it("refuses the alpha that would take them past 1 MiB, naming why; updates within the bound and smaller ones still apply", () => {
    let t: TopicState = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    const big = "x".repeat(10_000);
    let registered = 0;
    let refused: { accepted: boolean; reason?: string } | null = null;
    for (let i = 0; i < 200 && !refused; i++) {
      const out = applyTopicEvent(t, ev("alpha.registered", { alpha_id: `a${i}`, expression: big }), NOW);
      if (out.accepted) {
        t = JSON.parse(JSON.stringify(out.state)) as TopicState; // stored between applies
        registered += 1;
      } else refused = out as { accepted: false; reason: string };
    }
    expect(registered).toBeGreaterThan(90);
    expect(refused?.reason).toMatch(/the topic's alphas would take \d+ bytes, over the 1048576/);
    // What is kept stays within the bound, whatever JSON the row gets.
    expect(bytes(t.alphas)).toBeLessThanOrEqual(MAX_ALPHA_BYTES);
    expect(t.alpha_bytes).toBe(bytes(t.alphas));
    // A refused event changes nothing.
    expect(topicSummary(t).alphas).toHaveLength(registered);
    // Shrinking an alpha makes room, and evaluating one within the bound applies.
    const smaller = applyTopicEvent(t, ev("alpha.registered", { alpha_id: "a0", expression: "close / open" }), NOW);
    expect(smaller.accepted).toBe(true);
    const room = applyTopicEvent(smaller.state, ev("alpha.registered", { alpha_id: "fits", expression: "x".repeat(5_000) }), NOW);
    expect(room.accepted).toBe(true);
    expect(room.state.alpha_bytes).toBe(bytes(room.state.alphas));
  });

  it("counts a state stored before the bound once, then keeps the count as alphas change", () => {
    let t: TopicState = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    for (const id of ["x1", "x2"]) t = applyTopicEvent(t, ev("alpha.registered", { alpha_id: id, name: id }), NOW).state;
    const { alpha_bytes: _dropped, ...old } = t;
    const next = applyTopicEvent(old as TopicState, ev("alpha.evaluated", { alpha_id: "x1", metrics: { sharpe: 1.5 }, passed: true }), NOW);
    expect(next.accepted).toBe(true);
    expect(next.state.alpha_bytes).toBe(bytes(next.state.alphas));
  });
});

describe("session reducer: the insights a session keeps are bounded", () => {
  it("refuses the insight that would take them past 512 KiB, lists it as rejected, and keeps the count exact", () => {
    let s: SessionState = newSession({ id: "s1", team_id: "a", now: NOW });
    const error = "e".repeat(10_000);
    let kept = 0;
    let refused: string | null = null;
    for (let i = 0; i < 100 && refused === null; i++) {
      const out = applySessionEvent(s, ev("insight_failed", { insight_id: `i${i}`, error }), NOW);
      if (out.accepted) {
        s = JSON.parse(JSON.stringify(out.state)) as SessionState;
        kept += 1;
      } else {
        refused = out.reason;
        s = out.state;
      }
    }
    expect(kept).toBeGreaterThan(40);
    expect(refused).toMatch(/the session's insights would take \d+ bytes, over the 524288/);
    expect(Object.keys(s.insights)).toHaveLength(kept);
    expect(s.insight_bytes).toBe(bytes(s.insights));
    expect(s.rejected_events.at(-1)?.reason).toBe(refused);
    // An insight already kept may still change within the bound.
    const restarted = applySessionEvent(s, ev("insight_started", { insight_id: "i0", title: "again" }), NOW);
    expect(restarted.accepted).toBe(true);
    expect(restarted.state.insight_bytes).toBe(bytes(restarted.state.insights));
  });
});

describe("topic reducer: the tool names a step keeps are bounded", () => {
  it("refuses the report that would make a step track more than 200 names; reports on names it has still apply", () => {
    let t: TopicState = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    const tools = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ name: `tool-${String(from + i).padStart(4, "0")}-${"x".repeat(150)}`, calls: 1, duration_ms: 1, errors: 0 }));
    t = applyTopicEvent(t, ev("usage.reported", { step: "explore", tools: tools(0, 150) }), NOW).state;
    const over = applyTopicEvent(t, ev("usage.reported", { step: "explore", tools: tools(150, 51) }), NOW);
    expect(over.accepted).toBe(false);
    expect(over.accepted ? "" : over.reason).toBe("step explore would track 201 tool names; at most 200");
    expect(t.steps.explore.tools).toHaveLength(150);
    const upTo = applyTopicEvent(t, ev("usage.reported", { step: "explore", tools: [...tools(0, 150), ...tools(150, 50)] }), NOW);
    expect(upTo.accepted).toBe(true);
    expect(upTo.state.steps.explore.tools).toHaveLength(200);
    expect(upTo.state.steps.explore.tools[0]?.calls).toBe(2);
    // Another step has its own 200.
    expect(applyTopicEvent(upTo.state, ev("usage.reported", { step: "review", tools: tools(0, 200) }), NOW).accepted).toBe(true);
  });
});
