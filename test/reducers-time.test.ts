import { describe, expect, it } from "vitest";
import { type AgentEvent, parseCallbackBody } from "../src/domain/events";
import { applyTopicEvent, currentStep, newTopic, type TopicState } from "../src/domain/topic";

const NOW = "2026-11-22T13:00:00.000Z";
const ev = (type: AgentEvent["type"], data: Record<string, unknown>, occurred_at: string): AgentEvent => ({ id: `${type}-${Math.random()}`, type, session_id: "s1", topic_id: "t1", occurred_at, data });
const run = (events: AgentEvent[], state: TopicState = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW })) => events.reduce((t, e) => applyTopicEvent(t, e, NOW).state, state);

describe("occurred_at: one canonical form, compared as instants", () => {
  it("is normalised at the edge to UTC with milliseconds", () => {
    const cases: [string, string][] = [
      ["2026-11-22T12:00:00+02:00", "2026-11-22T10:00:00.000Z"],
      ["2026-11-22T10:00:00Z", "2026-11-22T10:00:00.000Z"],
      ["2026-11-22T10:00:00.5Z", "2026-11-22T10:00:00.500Z"],
      ["2026-11-22T05:30:00.123456-04:30", "2026-11-22T10:00:00.123Z"],
    ];
    for (const [given, stored] of cases) {
      const out = parseCallbackBody({ id: "e1", type: "step_started", session_id: "s", topic_id: "t", occurred_at: given, data: { step: "design" } });
      expect(out.success && out.events[0]?.occurred_at, given).toBe(stored);
    }
    expect(parseCallbackBody({ id: "e1", type: "step_started", session_id: "s", topic_id: "t", occurred_at: "yesterday", data: { step: "design" } }).success).toBe(false);
  });

  it("a start after a failure given with an offset re-runs the step (string order said it came first)", () => {
    // Failed at 10:00Z written as 12:00+02:00; re-run at 11:00Z.
    const t = run([ev("step_failed", { step: "explore", error: "x" }, "2026-11-22T12:00:00+02:00"), ev("step_started", { step: "explore" }, "2026-11-22T11:00:00Z")]);
    expect(t.steps.explore.status).toBe("running");
    expect(t.steps.explore.started_at).toBe("2026-11-22T11:00:00.000Z");
  });

  it("an older ending with fewer fraction digits does not win over a newer one ('Z' sorts after '.')", () => {
    const t = run([ev("step_completed", { step: "prep", turns: 3 }, "2026-11-22T10:00:00.500Z"), ev("step_failed", { step: "prep", error: "older" }, "2026-11-22T10:00:00Z")]);
    expect(t.steps.prep).toMatchObject({ status: "completed", ended_at: "2026-11-22T10:00:00.500Z", error: null });
    const a = run([ev("alpha.evaluated", { alpha_id: "a1", metrics: { s: 2 }, passed: true }, "2026-11-22T10:00:00.500Z"), ev("alpha.evaluated", { alpha_id: "a1", metrics: { s: 1 }, passed: false }, "2026-11-22T10:00:00Z")]);
    expect(a.alphas.a1).toMatchObject({ passed: true, evaluated_at: "2026-11-22T10:00:00.500Z" });
  });

  it("compares a state stored in the old form as instants too", () => {
    const stored = run([ev("step_started", { step: "design" }, "2026-11-22T10:00:00.000Z")]);
    const { clock: _clock, ...design } = stored.steps.design;
    const old: TopicState = { ...stored, steps: { ...stored.steps, design: { ...design, status: "failed", started_at: "2026-11-22T09:00:00Z", ended_at: "2026-11-22T12:00:00+02:00", error: "x" } } };
    expect(run([ev("step_started", { step: "design" }, "2026-11-22T11:00:00Z")], old).steps.design.status).toBe("running");
    expect(run([ev("step_started", { step: "design" }, "2026-11-22T09:30:00Z")], old).steps.design.status).toBe("failed");
    // The latest start is the current step, whatever form its time was kept in.
    const two = run([ev("step_started", { step: "prep" }, "2026-11-22T10:00:00.500Z"), ev("step_started", { step: "review" }, "2026-11-22T10:00:00Z")]);
    expect(currentStep(two)).toBe("prep");
  });
});

describe("a step's duration", () => {
  it("is measured from its start to its ending when the ending gives none (issue 2: per-step duration)", () => {
    const t = run([ev("step_started", { step: "design" }, "2026-11-22T10:00:00Z"), ev("step_completed", { step: "design", turns: 4 }, "2026-11-22T10:02:00Z")]);
    expect(t.steps.design).toMatchObject({ status: "completed", started_at: "2026-11-22T10:00:00.000Z", ended_at: "2026-11-22T10:02:00.000Z", duration_ms: 120_000 });
    // Whatever order they arrive in.
    const late = run([ev("step_failed", { step: "prep", error: "boom" }, "2026-11-22T10:00:30.500Z"), ev("step_started", { step: "prep" }, "2026-11-22T10:00:00Z")]);
    expect(late.steps.prep).toMatchObject({ status: "failed", duration_ms: 30_500 });
  });

  it("is the ending's own when it gives one, and null when no start came before the ending", () => {
    const own = run([ev("step_started", { step: "design" }, "2026-11-22T10:00:00Z"), ev("step_completed", { step: "design", turns: 4, duration_ms: 65_000 }, "2026-11-22T10:02:00Z")]);
    expect(own.steps.design.duration_ms).toBe(65_000);
    const noStart = run([ev("step_completed", { step: "design", turns: 4 }, "2026-11-22T10:02:00Z")]);
    expect(noStart.steps.design.duration_ms).toBeNull();
    // A start after the completion does not reopen the step, and says nothing of how long it took.
    const after = run([ev("step_completed", { step: "design", turns: 4 }, "2026-11-22T10:02:00Z"), ev("step_started", { step: "design" }, "2026-11-22T10:05:00Z")]);
    expect(after.steps.design).toMatchObject({ status: "completed", duration_ms: null });
    // A re-run after a failure runs again: no ending, no duration.
    const rerun = run([ev("step_started", { step: "prep" }, "2026-11-22T10:00:00Z"), ev("step_failed", { step: "prep", error: "x" }, "2026-11-22T10:01:00Z"), ev("step_started", { step: "prep" }, "2026-11-22T10:03:00Z")]);
    expect(rerun.steps.prep).toMatchObject({ status: "running", duration_ms: null });
  });
});
