import { describe, expect, it } from "vitest";
import type { AgentEvent } from "../src/domain/events";
import { applySessionEvent, newSession, REJECTED_KEEP, reject, type SessionState, STATUS_RESERVE, sessionStateBytes } from "../src/domain/session";
import { MAX_STATE_BYTES, jsonBytes } from "../src/domain/state-size";
import { applyTopicEvent, MAX_ALPHA_BYTES, newTopic, STEP_LIFECYCLE_RESERVE, type TopicState, topicStateBytes, topicSummary } from "../src/domain/topic";
import { STEPS } from "../src/domain/steps";

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

describe("topic reducer: tool usage sums stay finite, exact JSON numbers", () => {
  it("caps each sum at Number.MAX_SAFE_INTEGER, and takes a total stored as null (an old overflow) as the cap, not 0", () => {
    const huge = { name: "bash", calls: 1e9, duration_ms: 1e12, errors: 1e9 };
    let t: TopicState = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    t = { ...t, steps: { ...t.steps, explore: { ...t.steps.explore, tools: [{ name: "bash", calls: Number.MAX_SAFE_INTEGER - 1, duration_ms: Number.MAX_SAFE_INTEGER, errors: 5 }] } } };
    const out = applyTopicEvent(t, ev("usage.reported", { step: "explore", tools: [huge] }), NOW);
    expect(out.accepted).toBe(true);
    expect(out.state.steps.explore.tools).toEqual([{ name: "bash", calls: Number.MAX_SAFE_INTEGER, duration_ms: Number.MAX_SAFE_INTEGER, errors: 5 + 1e9 }]);
    // Through a hub restart (the state is stored as JSON): what was stored reads back the same.
    const restarted = JSON.parse(JSON.stringify(out.state)) as TopicState;
    expect(restarted.steps.explore.tools).toEqual(out.state.steps.explore.tools);
    // A state stored before the cap, whose sum overflowed to Infinity (null in JSON).
    const old = JSON.parse(JSON.stringify({ ...t, steps: { ...t.steps, explore: { ...t.steps.explore, tools: [{ name: "bash", calls: 1, duration_ms: Number.POSITIVE_INFINITY, errors: 0 }] } } })) as TopicState;
    expect(topicSummary(old).steps.explore.tools).toEqual([{ name: "bash", calls: 1, duration_ms: Number.MAX_SAFE_INTEGER, errors: 0 }]);
    const later = applyTopicEvent(old, ev("usage.reported", { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 5, errors: 0 }] }), NOW);
    expect(later.state.steps.explore.tools).toEqual([{ name: "bash", calls: 2, duration_ms: Number.MAX_SAFE_INTEGER, errors: 0 }]);
  });
});

/** What Cloudflare lets one SQLite string or row take: a hub's state row is written whole. */
const ROW_LIMIT = 2_000_000;
/** One character that JSON.stringify escapes to six bytes (`\u0001`). */
const CTRL = "\u0001";

describe("a hub's state stays under the row limit, measured as stored (JSON in UTF-8), not in characters", () => {
  it("refuses the topic event that would take its state past the ceiling: 1 MiB of alphas, then six steps of escaped tool names and errors", () => {
    let t: TopicState = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    const refused: { event: AgentEvent; reason: string }[] = [];
    const apply = (event: AgentEvent) => {
      const out = applyTopicEvent(t, event, NOW);
      if (!out.accepted) {
        refused.push({ event, reason: out.reason });
        expect(out.state).toBe(t); // a refused event changes nothing
        return;
      }
      t = JSON.parse(JSON.stringify(out.state)) as TopicState; // stored between applies, as the hub does
      // Every state accepted fits its row, whatever came before.
      expect(bytes(t)).toBeLessThanOrEqual(MAX_STATE_BYTES);
    };
    // The alphas the topic may keep: registered until the alpha bound refuses one.
    for (let i = 0; i < 200 && refused.length === 0; i++) apply(ev("alpha.registered", { alpha_id: `a${i}`, expression: "x".repeat(10_000) }));
    expect(refused[0]?.reason).toMatch(/the topic's alphas would take/);
    refused.length = 0;
    // The reviewer's case: within every per-field bound, 6 bytes a character once serialised.
    // 200 names of 200 characters, an error of 10,000 (kept twice: error and clock.end.error).
    const name = (i: number) => `${i}`.padEnd(200, CTRL);
    for (const step of STEPS) {
      apply(ev("usage.reported", { step, tools: Array.from({ length: 200 }, (_, i) => ({ name: name(i), calls: 1, duration_ms: 1, errors: 0 })) }));
      apply(ev("step_failed", { step, error: CTRL.repeat(10_000) }));
    }
    expect(refused.length).toBeGreaterThan(0);
    // Only usage is refused: the steps' starts and endings always have their room.
    for (const r of refused) {
      expect(r.event.type).toBe("usage.reported");
      expect(r.reason).toMatch(/^the topic's state would take \d+ bytes as JSON, over the 1120000 a topic keeps for usage and alphas/);
    }
    expect(bytes(t)).toBeLessThan(ROW_LIMIT);
    // Room is kept for a hypothesis filled in later (outside the reducer): 10,000 escaped characters.
    expect(bytes({ ...t, hypothesis: CTRL.repeat(10_000) })).toBeLessThan(ROW_LIMIT);
    // A small event that does not grow the state still applies.
    const again = applyTopicEvent(t, ev("step_started", { step: "design" }), NOW);
    expect(again.accepted).toBe(true);
    // The alpha count stays exact, so the state can be measured without serialising the alphas.
    expect(t.alpha_bytes).toBe(bytes(t.alphas));
  });

  it("refuses the session event that would take its state past the ceiling, and lists it as rejected", () => {
    // Metadata is kept as the session was created with it; the reducer bounds what events add.
    let s: SessionState = newSession({ id: "s1", team_id: "a", metadata: { notes: "m".repeat(1_500_000) }, now: NOW });
    let refused: string | null = null;
    for (let i = 0; i < 100 && refused === null; i++) {
      const out = applySessionEvent(s, ev("insight_failed", { insight_id: `i${i}`, error: CTRL.repeat(10_000) }), NOW);
      s = JSON.parse(JSON.stringify(out.state)) as SessionState;
      if (!out.accepted) refused = out.reason;
      expect(bytes(s)).toBeLessThanOrEqual(MAX_STATE_BYTES);
    }
    expect(refused).toMatch(/^the session's state would take \d+ bytes as JSON, over the 1770000 a session keeps for insights/);
    // The session can still end, with the longest reason a status takes.
    const ended = applySessionEvent(s, ev("update_status", { status: "failed", reason: CTRL.repeat(10_000) }), NOW);
    expect(ended.accepted).toBe(true);
    expect(ended.state.status).toBe("failed");
    expect(bytes(ended.state)).toBeLessThanOrEqual(MAX_STATE_BYTES);
    expect(s.rejected_events.at(-1)?.reason).toBe(refused);
    expect(s.insight_bytes).toBe(bytes(s.insights));
  });

  it("keeps the newest refusals that fit: a full session's list of them never takes it past the ceiling", () => {
    let s: SessionState = newSession({ id: "s1", team_id: "a", metadata: { notes: "m".repeat(MAX_STATE_BYTES - 20_000) }, now: NOW });
    // Refusals with long ids (200 escaped characters each), as the consumer records a topic's.
    // About 1.6 KB each: some 12 fill the room left, 30 are well past it (fewer than REJECTED_KEEP).
    const n = 30;
    for (let i = 0; i < n; i++) {
      s = reject(s, { id: `${i}`.padEnd(200, CTRL), type: "step_failed" }, `unknown step "${CTRL.repeat(64)}"`, NOW).state;
      if (i % 5 === 4) expect(bytes(s)).toBeLessThanOrEqual(MAX_STATE_BYTES);
    }
    expect(n).toBeLessThan(REJECTED_KEEP);
    expect(s.rejected_events.length).toBeGreaterThan(0);
    expect(s.rejected_events.length).toBeLessThan(n);
    expect(s.rejected_events.at(-1)?.event_id).toBe(`${n - 1}`.padEnd(200, CTRL));
  });
});

describe("a full topic can still start and end every step", () => {
  it("after usage filled all it may, each step starts, completes, fails and starts again with the longest ids and errors", () => {
    let t: TopicState = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    for (let i = 0; i < 200; i++) {
      const out = applyTopicEvent(t, ev("alpha.registered", { alpha_id: `a${i}`, expression: "x".repeat(10_000) }), NOW);
      if (!out.accepted) break;
      t = out.state;
    }
    // One tool at a time, as an agent reports them, until usage is refused.
    let usageRefused = false;
    for (let i = 0; i < 200 && !usageRefused; i++) {
      for (const step of STEPS) {
        const out = applyTopicEvent(t, ev("usage.reported", { step, tools: [{ name: `${i}`.padEnd(200, CTRL), calls: 1 }] }), NOW);
        if (!out.accepted) usageRefused = true;
        else t = out.state;
      }
    }
    expect(usageRefused).toBe(true);
    const longId = (tag: string) => `${tag}`.padEnd(200, CTRL);
    let k = 0;
    const must = (type: AgentEvent["type"], data: Record<string, unknown>) => {
      // Each later than the one before: at the same instant a failure outranks a completion.
      k += 1;
      const out = applyTopicEvent(t, { ...ev(type, data), id: longId(`${k}`), occurred_at: new Date(Date.parse(NOW) + k * 1000).toISOString() }, NOW);
      expect(out.accepted ? "" : out.reason, `${type} ${JSON.stringify(data).slice(0, 40)}`).toBe("");
      t = out.state;
      expect(bytes(t)).toBeLessThanOrEqual(MAX_STATE_BYTES);
    };
    for (const step of STEPS) {
      must("step_started", { step, max_turns: 10 });
      must("step_failed", { step, error: CTRL.repeat(10_000) });
    }
    for (const step of STEPS) {
      must("step_started", { step });
      must("step_completed", { step, turns: 3, duration_ms: 1000, cost_usd: 0.5 });
    }
    expect(STEPS.every((s) => t.steps[s].status === "completed")).toBe(true);
  });

  it("the room kept for starts and endings holds the worst six steps can take", () => {
    const fresh = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    let t = fresh;
    const longId = (tag: string) => `${tag}`.padEnd(200, CTRL);
    let k = 0;
    for (const step of STEPS) {
      for (const [type, data] of [
        // The longest numbers the schemas let through (src/domain/events.ts, MAX_EVENT_*).
        ["step_started", { step, max_turns: 999_999_999 }],
        ["step_failed", { step, error: CTRL.repeat(10_000), turns: 999_999_999, cost_usd: 123_456.789_012_345_67, duration_ms: 999_999_999_999.999_9 }],
      ] as const) {
        const out = applyTopicEvent(t, { ...ev(type, data), id: longId(`${++k}`), occurred_at: "2026-11-22T10:00:00.123Z", accepted_at: "2026-11-22T10:00:00.123Z", accepted_index: 99 } as AgentEvent, NOW);
        expect(out.accepted).toBe(true);
        t = out.state;
      }
    }
    expect(bytes(t) - bytes(fresh)).toBeLessThanOrEqual(STEP_LIFECYCLE_RESERVE);
    // And a status's: the longest reason, with its stamp.
    const s0 = newSession({ id: "s1", team_id: "a", now: NOW });
    const s1 = applySessionEvent(s0, ev("update_status", { status: "failed", reason: CTRL.repeat(10_000) }), NOW).state;
    expect(bytes(s1) - bytes(s0)).toBeLessThanOrEqual(STATUS_RESERVE);
  });
});

describe("jsonBytes counts what JSON.stringify writes, in UTF-8, without serialising", () => {
  it("agrees with TextEncoder on strings of every kind, numbers, nesting and left-out members", () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const chars = ["a", '"', "\\", "\n", "\t", "\u0001", "\u001f", "\u007f", "é", "€", "\ud83d\ude00", "\ud800", "\udc00", "\u2028"];
    const str = () => Array.from({ length: Math.floor(rand() * 12) }, () => chars[Math.floor(rand() * chars.length)]).join("");
    const value = (depth: number): unknown => {
      const r = rand();
      if (depth > 3 || r < 0.3) return str();
      if (r < 0.4) return [0, -0, 1.5, -1e21, 1e-7, Number.NaN, Number.POSITIVE_INFINITY][Math.floor(rand() * 7)];
      if (r < 0.45) return rand() < 0.5;
      if (r < 0.5) return null;
      if (r < 0.75) return Array.from({ length: Math.floor(rand() * 4) }, () => (rand() < 0.1 ? undefined : value(depth + 1)));
      return Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, () => [str(), rand() < 0.1 ? undefined : value(depth + 1)]));
    };
    for (let i = 0; i < 2000; i++) {
      const v = value(0);
      expect(jsonBytes(v), JSON.stringify(v)).toBe(bytes(v));
    }
  });

  it("stays exact as a reducer's states share records from event to event (no stale count)", () => {
    let t: TopicState = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    let s: SessionState = newSession({ id: "s1", team_id: "a", metadata: { note: "é".repeat(1000) }, now: NOW });
    for (let i = 0; i < 60; i++) {
      const step = STEPS[i % STEPS.length] as string;
      const type = (["step_started", "usage.reported", "step_failed", "step_completed", "alpha.registered"] as const)[i % 5] as AgentEvent["type"];
      const data = type === "alpha.registered" ? { alpha_id: `a${i % 7}`, expression: "€".repeat(i) } : type === "usage.reported" ? { step, tools: [{ name: `tool${i % 9}\u0001`, calls: 1 }], turns: i } : type === "step_failed" ? { step, error: `boom ${i}` } : { step, turns: i };
      t = applyTopicEvent(t, ev(type, data), NOW).state;
      expect(topicStateBytes(t)).toBe(bytes(t));
      s = applySessionEvent(s, ev("insight_started", { insight_id: `i${i % 5}`, title: `t${i}é` }), NOW).state;
      expect(sessionStateBytes(s)).toBe(bytes(s));
    }
  });
});

