import { describe, expect, it } from "vitest";
import { backoffSeconds } from "../src/domain/backoff";
import { type AgentEvent, parseCallbackBody } from "../src/domain/events";
import { logs } from "../src/lib/log";
import { jsonSchema, MAX_JSON_DEPTH, tooDeepAt } from "../src/domain/json";
import { planReplay, trimBelow } from "../src/domain/replay";
import { applySessionEvent, newSession, REJECTED_KEEP, transitionSession } from "../src/domain/session";
import { applyTopicEvent, currentStep, newTopic, type TopicState, topicStatus } from "../src/domain/topic";

const NOW = "2026-11-22T10:00:00.000Z";
const ev = (type: AgentEvent["type"], data: Record<string, unknown>, extra: Partial<AgentEvent> = {}): AgentEvent => ({ id: `${type}-${Math.random()}`, type, session_id: "s1", topic_id: "t1", data, ...extra });
const at = (minute: number) => `2026-11-22T10:${String(minute).padStart(2, "0")}:00.000Z`;

function run(events: AgentEvent[], state: TopicState = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW })) {
  for (const e of events) state = applyTopicEvent(state, e, NOW).state;
  return state;
}

describe("session state machine", () => {
  it("goes created → running → completed and never leaves a terminal state", () => {
    expect(transitionSession("created", "running")).toEqual({ ok: true });
    expect(transitionSession("running", "completed")).toEqual({ ok: true });
    expect(transitionSession("created", "failed")).toEqual({ ok: true });
    expect(transitionSession("completed", "running").ok).toBe(false);
    expect(transitionSession("failed", "completed").ok).toBe(false);
    expect(transitionSession("running", "created").ok).toBe(false);
    expect(transitionSession("completed", "completed")).toEqual({ ok: true });
  });

  it("records a refused event on the session and keeps its status", () => {
    let s = newSession({ id: "s1", team_id: "a", now: NOW });
    s = applySessionEvent(s, ev("update_status", { status: "completed" }), NOW).state;
    const out = applySessionEvent(s, ev("update_status", { status: "running" }, { id: "late" }), NOW);
    expect(out.accepted).toBe(false);
    expect(out.state.status).toBe("completed");
    expect(out.state.rejected_events).toEqual([{ event_id: "late", type: "update_status", reason: expect.stringContaining("completed") }]);
  });

  it("bounds the rejected list", () => {
    let s = applySessionEvent(newSession({ id: "s1", team_id: "a", now: NOW }), ev("update_status", { status: "failed" }), NOW).state;
    for (let i = 0; i < REJECTED_KEEP + 5; i++) s = applySessionEvent(s, ev("update_status", { status: "running" }, { id: `r${i}` }), NOW).state;
    expect(s.rejected_events).toHaveLength(REJECTED_KEEP);
    expect(s.rejected_events.at(-1)?.event_id).toBe(`r${REJECTED_KEEP + 4}`);
  });

  it("keeps insights, and a late start never undoes a failure", () => {
    let s = newSession({ id: "s1", team_id: "a", now: NOW });
    s = applySessionEvent(s, ev("insight_failed", { insight_id: "i1", error: "boom" }), NOW).state;
    s = applySessionEvent(s, ev("insight_started", { insight_id: "i1", title: "idea" }), NOW).state;
    expect(s.insights.i1).toMatchObject({ status: "failed", error: "boom", title: "idea" });
  });
});

describe("session state machine: terminal repeats", () => {
  it("keeps a terminal session's reason when the same status is sent again", () => {
    let s = newSession({ id: "s1", team_id: "a", now: NOW });
    s = applySessionEvent(s, ev("update_status", { status: "failed", reason: "out of budget" }), NOW).state;
    const again = applySessionEvent(s, ev("update_status", { status: "failed", reason: "later" }), at(5));
    expect(again.accepted).toBe(true);
    expect(again.state).toBe(s);
    expect(again.state.status_reason).toBe("out of budget");
  });
});

describe("log levels", () => {
  it("writes info lines by default and only failures above it", () => {
    expect(logs("info", undefined)).toBe(true);
    expect(logs("info", "info")).toBe(true);
    expect(logs("info", "warn")).toBe(false);
    expect(logs("warn", "warn")).toBe(true);
    expect(logs("warn", "error")).toBe(false);
    expect(logs("error", "error")).toBe(true);
    expect(logs("info", "nonsense")).toBe(true);
  });
});

describe("JSON depth", () => {
  const nest = (n: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < n; i++) v = i % 2 ? [v] : { k: v };
    return v;
  };
  it("accepts JSON up to the bound and names where deeper JSON goes past it", () => {
    expect(tooDeepAt(nest(MAX_JSON_DEPTH))).toBeNull();
    expect(tooDeepAt(nest(MAX_JSON_DEPTH + 1))).toMatch(/^(k|0)(\.(k|0)){31}$/);
    const path = tooDeepAt({ a: [1, { b: nest(MAX_JSON_DEPTH) }] }) ?? "";
    expect(path.startsWith("a.1.b.0.k.0")).toBe(true);
    expect(path.split(".")).toHaveLength(MAX_JSON_DEPTH);
    expect(tooDeepAt("x")).toBeNull();
  });
  it("walks 100,000 levels without overflowing the stack", () => {
    expect(tooDeepAt(nest(100_000))).not.toBeNull();
    expect(jsonSchema.safeParse(nest(100_000)).success).toBe(false);
    expect(jsonSchema.safeParse({ a: [1, "x", null, true] }).success).toBe(true);
    expect(jsonSchema.safeParse(Number.NaN).success).toBe(false);
  });
});

describe("topic reducer", () => {
  it("uses default turn budgets and per-topic overrides", () => {
    const t = newTopic({ id: "t1", session_id: "s1", team_id: "a", max_turns: { explore: 30 }, now: NOW });
    expect(Object.fromEntries(Object.entries(t.steps).map(([k, v]) => [k, v.max_turns]))).toEqual({ design: 15, prep: 40, explore: 30, review: 15, implement: 40, evaluate: 60 });
  });

  it("records turns, cost, duration and tools per step", () => {
    const t = run([
      ev("step_started", { step: "design", max_turns: 20 }, { occurred_at: at(0) }),
      ev("usage.reported", { step: "design", tools: [{ name: "bash", calls: 2, duration_ms: 10, errors: 0 }], turns: 3, cost_usd: 0.1 }),
      ev("usage.reported", { step: "design", tools: [{ name: "bash", calls: 1, duration_ms: 5, errors: 1 }, { name: "web", calls: 1, duration_ms: 7, errors: 0 }] }),
      ev("step_completed", { step: "design", turns: 7, cost_usd: 0.25, duration_ms: 1234 }, { occurred_at: at(1) }),
    ]);
    expect(t.steps.design).toMatchObject({ status: "completed", turns: 7, max_turns: 20, cost_usd: 0.25, duration_ms: 1234 });
    expect(t.steps.design.tools).toEqual([
      { name: "bash", calls: 3, duration_ms: 15, errors: 1 },
      { name: "web", calls: 1, duration_ms: 7, errors: 0 },
    ]);
  });

  it("a late step_started never undoes step_completed, whatever order they arrive in", () => {
    const started = ev("step_started", { step: "prep" }, { occurred_at: at(0) });
    const completed = ev("step_completed", { step: "prep", turns: 5 }, { occurred_at: at(2) });
    const inOrder = run([started, completed]);
    const reversed = run([completed, started]);
    expect(inOrder.steps.prep.status).toBe("completed");
    expect(reversed.steps.prep.status).toBe("completed");
    expect(reversed.steps.prep.turns).toBe(5);
  });

  it("a failed step is re-run by a later start, and an old failure arriving late changes nothing", () => {
    const fail = ev("step_failed", { step: "explore", error: "timeout" }, { occurred_at: at(1) });
    const restart = ev("step_started", { step: "explore" }, { occurred_at: at(2) });
    const done = ev("step_completed", { step: "explore", turns: 9 }, { occurred_at: at(3) });
    for (const order of [[fail, restart, done], [done, fail, restart], [restart, done, fail], [restart, fail, done]]) {
      const t = run(order);
      expect(t.steps.explore.status, JSON.stringify(order.map((e) => e.type))).toBe("completed");
    }
    const t = run([fail, restart]);
    expect(t.steps.explore.status).toBe("running");
    expect(t.steps.explore.error).toBeNull();
  });

  it("rejects an unknown step", () => {
    const out = applyTopicEvent(newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW }), ev("step_started", { step: "deploy" }), NOW);
    expect(out.accepted).toBe(false);
    if (!out.accepted) expect(out.reason).toContain("unknown step");
  });

  it("lets a step run on its own and derives status and current step", () => {
    let t = run([ev("step_started", { step: "implement" }, { occurred_at: at(0) })]);
    expect(topicStatus(t)).toBe("running");
    expect(currentStep(t)).toBe("implement");
    t = run([ev("step_completed", { step: "implement", turns: 1 }, { occurred_at: at(1) })], t);
    expect(currentStep(t)).toBe("implement");
    t = run([ev("step_failed", { step: "evaluate", error: "x" }, { occurred_at: at(2) })], t);
    expect(topicStatus(t)).toBe("failed");
    t = run([ev("step_started", { step: "evaluate" }, { occurred_at: at(3) }), ev("step_completed", { step: "evaluate", turns: 2 }, { occurred_at: at(4) })], t);
    expect(topicStatus(t)).toBe("completed");
    expect(currentStep(newTopic({ id: "x", session_id: "s", team_id: "a", now: NOW }))).toBeNull();
  });

  it("registers and evaluates alphas in either order", () => {
    const reg = ev("alpha.registered", { alpha_id: "a1", name: "mom", expression: "rank(close)" }, { occurred_at: at(0) });
    const evald = ev("alpha.evaluated", { alpha_id: "a1", metrics: { sharpe: 1.5 }, passed: true }, { occurred_at: at(1) });
    for (const order of [[reg, evald], [evald, reg]]) {
      const t = run(order);
      expect(t.alphas.a1).toMatchObject({ name: "mom", expression: "rank(close)", metrics: { sharpe: 1.5 }, passed: true });
    }
    const stale = ev("alpha.evaluated", { alpha_id: "a1", metrics: { sharpe: 0.1 }, passed: false }, { occurred_at: at(0) });
    expect(run([evald, stale]).alphas.a1?.passed).toBe(true);
  });
});

describe("event validation", () => {
  it("accepts one event or a batch, keeps unknown fields, and names bad fields", () => {
    const ok = parseCallbackBody({ id: "e1", type: "step_started", session_id: "s", topic_id: "t", data: { step: "design", extra: 1 } });
    expect(ok.success && ok.events[0]?.data).toEqual({ step: "design", extra: 1 });
    const bad = parseCallbackBody({ events: [{ id: "e1", type: "step_completed", session_id: "s", topic_id: "t", data: { step: "design" } }] });
    expect(bad.success).toBe(false);
    if (!bad.success) expect(bad.error.issues.map((i) => i.path.join("."))).toContain("events.0.data.turns");
    const noTopic = parseCallbackBody({ id: "e1", type: "step_started", session_id: "s", data: { step: "design" } });
    expect(noTopic.success).toBe(false);
  });
});

describe("replay planning", () => {
  it("replays within history, resets outside it", () => {
    expect(planReplay(null, 1, 10)).toEqual({ kind: "snapshot" });
    expect(planReplay(5, 1, 10)).toEqual({ kind: "replay", after: 5 });
    expect(planReplay(10, 1, 10)).toEqual({ kind: "replay", after: 10 });
    expect(planReplay(0, 1, 10)).toEqual({ kind: "replay", after: 0 });
    expect(planReplay(11, 1, 10)).toEqual({ kind: "reset", reason: "ahead" });
    expect(planReplay(3, 6, 10)).toEqual({ kind: "reset", reason: "expired" });
    expect(planReplay(5, 6, 10)).toEqual({ kind: "replay", after: 5 });
    expect(planReplay("invalid", 1, 10)).toEqual({ kind: "reset", reason: "invalid" });
    expect(trimBelow(25, 20)).toBe(5);
    expect(trimBelow(3, 20)).toBe(0);
  });

  it("backs off exponentially with jitter, capped", () => {
    expect(backoffSeconds(1, () => 1)).toBe(2);
    expect(backoffSeconds(3, () => 1)).toBe(8);
    expect(backoffSeconds(20, () => 1)).toBe(300);
    expect(backoffSeconds(5, () => 0)).toBe(1);
  });
});
