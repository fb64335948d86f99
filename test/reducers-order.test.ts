import { describe, expect, it } from "vitest";
import { type AgentEvent, stampAccepted } from "../src/domain/events";
import { applySessionEvent, newSession, type SessionState } from "../src/domain/session";
import { applyTopicEvent, currentStep, newTopic, type TopicState, topicStatus, topicSummary } from "../src/domain/topic";

const NOW = "2026-11-22T13:00:00.000Z";
const at = (minute: number) => `2026-11-22T10:${String(minute).padStart(2, "0")}:00.000Z`;
let n = 0;
const ev = (type: AgentEvent["type"], data: Record<string, unknown>, minute: number, id = `e${++n}`): AgentEvent => ({ id, type, session_id: "s1", topic_id: "t1", occurred_at: at(minute), data });

function runTopic(events: AgentEvent[]): TopicState {
  let t = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
  // `now` differs per apply, as in a hub: it must not decide anything when occurred_at is given.
  events.forEach((e, i) => {
    t = applyTopicEvent(t, e, `2026-11-22T12:00:${String(i).padStart(2, "0")}.000Z`).state;
  });
  return t;
}

function runSession(events: AgentEvent[]): SessionState {
  let s = newSession({ id: "s1", team_id: "a", now: NOW });
  events.forEach((e, i) => {
    s = applySessionEvent(s, e, `2026-11-22T12:00:${String(i).padStart(2, "0")}.000Z`).state;
  });
  return s;
}

/** The state with what only says when it was applied left out, keys sorted: equal iff the same. */
function canonical(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).filter((k) => k !== "updated_at").sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]));
    return v;
  };
  return JSON.stringify(sort(value));
}

function* permutations<T>(items: T[]): Generator<T[]> {
  if (items.length <= 1) {
    yield [...items];
    return;
  }
  for (let i = 0; i < items.length; i++) {
    const rest = [...items.slice(0, i), ...items.slice(i + 1)];
    for (const p of permutations(rest)) yield [items[i] as T, ...p];
  }
}

function* subsets<T>(items: T[]): Generator<T[]> {
  for (let mask = 1; mask < 1 << items.length; mask++) yield items.filter((_, i) => mask & (1 << i));
}

/** Applies every order of `events` and expects one final state; returns it. */
function sameInEveryOrder<S>(events: AgentEvent[], run: (e: AgentEvent[]) => S): S {
  const first = run(events);
  const want = canonical(first);
  for (const order of permutations(events)) {
    expect(canonical(run(order)), order.map((e) => `${e.type}@${e.occurred_at}`).join(", ")).toBe(want);
  }
  return first;
}

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("topic reducer: the same events give the same topic, whatever order they arrive in", () => {
  it("start, failure, re-run delivered as started(t1), started(t3), failed(t2) ends running", () => {
    const s1 = ev("step_started", { step: "explore" }, 1);
    const f2 = ev("step_failed", { step: "explore", error: "timeout" }, 2);
    const s3 = ev("step_started", { step: "explore" }, 3);
    const t = runTopic([s1, s3, f2]);
    expect(t.steps.explore).toMatchObject({ status: "running", started_at: at(3), ended_at: null, error: null });
    expect(topicStatus(t)).toBe("running");
    const every = sameInEveryOrder([s1, f2, s3], runTopic);
    expect(topicSummary(every).steps.explore).toMatchObject({ status: "running", started_at: at(3) });
  });

  it("every order of every subset of one step's events gives one record", () => {
    const events = [
      ev("step_started", { step: "implement", max_turns: 20 }, 1),
      ev("step_failed", { step: "implement", error: "tests red", turns: 4 }, 2),
      ev("usage.reported", { step: "implement", tools: [{ name: "bash", calls: 2, duration_ms: 5, errors: 1 }], turns: 6, cost_usd: 0.2 }, 2),
      ev("step_started", { step: "implement", max_turns: 30 }, 3),
      ev("usage.reported", { step: "implement", tools: [{ name: "web", calls: 1, duration_ms: 7, errors: 0 }], turns: 3 }, 4),
      ev("step_completed", { step: "implement", turns: 9, cost_usd: 0.5, duration_ms: 100 }, 5),
    ];
    for (const subset of subsets(events)) sameInEveryOrder(subset, runTopic);
    expect(topicSummary(runTopic([...events].reverse())).steps.implement).toEqual({
      status: "completed",
      turns: 9,
      max_turns: 30,
      cost_usd: 0.5,
      duration_ms: 100,
      // The bash call was reported at 2, in the run that failed; the re-run started at 3.
      tools: [{ name: "web", calls: 1, duration_ms: 7, errors: 0 }],
      started_at: at(3),
      ended_at: at(5),
      error: null,
    });
  });

  it("a re-run of a failed step shows its own usage, cost and tools, not the earlier run's, in every order", () => {
    // The runner's two runs: the first reported 5 turns, $0.50 and a bash call, then failed; the
    // second 1 turn, $0.10 and a bash call, then failed again. Reports occur before their ending.
    const run1 = [
      ev("step_started", { step: "explore" }, 1),
      ev("usage.reported", { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 0, errors: 0 }], turns: 5, cost_usd: 0.5 }, 2),
      ev("step_failed", { step: "explore", error: "exit code 3", turns: 5, cost_usd: 0.5 }, 3),
    ];
    const start2 = ev("step_started", { step: "explore" }, 4);
    const usage2 = ev("usage.reported", { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 0, errors: 0 }], turns: 1, cost_usd: 0.1 }, 5);
    const fail2 = ev("step_failed", { step: "explore", error: "exit code 4", turns: 1, cost_usd: 0.1 }, 6);
    const want = { turns: 1, cost_usd: 0.1, tools: [{ name: "bash", calls: 1, duration_ms: 0, errors: 0 }] };
    expect(sameInEveryOrder([...run1, start2, usage2, fail2], runTopic).steps.explore).toMatchObject({ status: "failed", error: "exit code 4", ...want });
    // While the re-run runs, before its ending: its own report only, or nothing yet.
    expect(sameInEveryOrder([...run1, start2, usage2], runTopic).steps.explore).toMatchObject({ status: "running", ...want });
    expect(sameInEveryOrder([...run1, start2], runTopic).steps.explore).toMatchObject({ status: "running", turns: 0, cost_usd: 0, tools: [] });
    // A failure that gave no figures shows its own run's usage, never another run's.
    const bare = ev("step_failed", { step: "explore", error: "exit code 4" }, 6);
    expect(sameInEveryOrder([...run1, start2, usage2, bare], runTopic).steps.explore).toMatchObject({ status: "failed", ...want });
  });

  it("a run with more reports than a step keeps apart merges the earliest, the same in every order", () => {
    const random = rng(7);
    const start = ev("step_started", { step: "design" }, 0);
    const reports = Array.from({ length: 40 }, (_, i) => ({ ...ev("usage.reported", { step: "design", tools: [{ name: `t${i % 3}`, calls: 1, duration_ms: 1, errors: 0 }], turns: i }, 1), occurred_at: `2026-11-22T10:01:${String(i).padStart(2, "0")}.000Z` }));
    const want = canonical(runTopic([start, ...reports]));
    for (let k = 0; k < 30; k++) expect(canonical(runTopic([start, ...reports].sort(() => random() - 0.5)))).toBe(want);
    expect(runTopic([start, ...reports]).steps.design).toMatchObject({ turns: 39, tools: [{ name: "t0", calls: 14 }, { name: "t1", calls: 13 }, { name: "t2", calls: 13 }] });
  });

  it("a failure's cost is shown as a completion's is, not the highest usage reported", () => {
    const events = [
      ev("step_started", { step: "review" }, 1),
      ev("usage.reported", { step: "review", tools: [], turns: 9, cost_usd: 0.9 }, 2),
      ev("step_failed", { step: "review", error: "x", turns: 3, cost_usd: 0.3 }, 3),
    ];
    expect(sameInEveryOrder(events, runTopic).steps.review).toMatchObject({ status: "failed", turns: 3, cost_usd: 0.3 });
  });

  it("a step's usage stored before runs were told apart is kept as the latest start's run, and a re-run leaves it", () => {
    const t = runTopic([ev("step_started", { step: "prep" }, 1), ev("usage.reported", { step: "prep", tools: [{ name: "bash", calls: 2, duration_ms: 1, errors: 0 }], turns: 4, cost_usd: 0.4 }, 2)]);
    // The clock as it was stored then: the highest totals in `usage`, the tools on the record.
    const { reports: _reports, ...clock } = t.steps.prep.clock as NonNullable<TopicState["steps"]["prep"]["clock"]>;
    const old = { ...t, steps: { ...t.steps, prep: { ...t.steps.prep, clock: { ...clock, usage: { turns: 4, cost_usd: 0.4 } } } } } as TopicState;
    const more = applyTopicEvent(old, ev("usage.reported", { step: "prep", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }], turns: 6 }, 3), NOW).state;
    expect(more.steps.prep).toMatchObject({ status: "running", turns: 6, cost_usd: 0.4, tools: [{ name: "bash", calls: 3, duration_ms: 2, errors: 0 }] });
    const failed = applyTopicEvent(more, ev("step_failed", { step: "prep", error: "x" }, 4), NOW).state;
    const rerun = applyTopicEvent(failed, ev("step_started", { step: "prep" }, 5), NOW).state;
    expect(rerun.steps.prep).toMatchObject({ status: "running", turns: 0, cost_usd: 0, tools: [] });
  });

  it("keeps its rules in every order: a completion is not reopened by a start, the later ending wins, a failure at the same instant as a completion shows", () => {
    const cases: [AgentEvent[], string][] = [
      [[ev("step_completed", { step: "prep", turns: 2 }, 2), ev("step_started", { step: "prep" }, 1)], "completed"],
      [[ev("step_completed", { step: "prep", turns: 2 }, 2), ev("step_started", { step: "prep" }, 3)], "completed"],
      [[ev("step_completed", { step: "prep", turns: 2 }, 2), ev("step_failed", { step: "prep", error: "x" }, 3)], "failed"],
      [[ev("step_failed", { step: "prep", error: "x" }, 2), ev("step_completed", { step: "prep", turns: 2 }, 3)], "completed"],
      [[ev("step_failed", { step: "prep", error: "x" }, 2), ev("step_completed", { step: "prep", turns: 2 }, 2)], "failed"],
      [[ev("step_failed", { step: "prep", error: "x" }, 2), ev("step_started", { step: "prep" }, 2)], "failed"],
      [[ev("step_failed", { step: "prep", error: "x" }, 2), ev("step_started", { step: "prep" }, 3), ev("step_completed", { step: "prep", turns: 1 }, 1)], "running"],
    ];
    for (const [events, status] of cases) expect(sameInEveryOrder(events, runTopic).steps.prep.status, JSON.stringify(events)).toBe(status);
  });

  it("one request's events at one instant keep the order given, in every arrival order; across requests the later accepted is later", () => {
    // As POST /v1/callbacks stamps them: one accepted_at, positions 0, 1, 2; ids out of order on purpose.
    const request = (acceptedAt: string, events: AgentEvent[]) => stampAccepted(events.map((e) => ({ ...e, occurred_at: undefined })), new Date(acceptedAt));
    const t0 = "2026-11-22T10:00:00.000Z";
    const rerun = request(t0, [
      ev("step_started", { step: "design" }, 0, "o-2"),
      ev("step_failed", { step: "design", error: "boom" }, 0, "o-3"),
      ev("step_started", { step: "design" }, 0, "o-1"),
    ]);
    expect(sameInEveryOrder(rerun, runTopic).steps.design).toMatchObject({ status: "running", error: null });
    const twoEndings = request(t0, [
      ev("step_started", { step: "prep" }, 0, "p-b"),
      ev("step_completed", { step: "prep", turns: 5 }, 0, "p-c"),
      ev("step_completed", { step: "prep", turns: 9 }, 0, "p-a"),
    ]);
    expect(sameInEveryOrder(twoEndings, runTopic).steps.prep).toMatchObject({ status: "completed", turns: 9 });
    const failThenComplete = request(t0, [ev("step_failed", { step: "review", error: "x" }, 0, "r-b"), ev("step_completed", { step: "review", turns: 1 }, 0, "r-a")]);
    expect(sameInEveryOrder(failThenComplete, runTopic).steps.review.status).toBe("completed");
    // Two requests whose events claim one instant: the one accepted later is taken as later
    // (one fixed order for every tie; see the cycles below), in either direction.
    const [failed] = stampAccepted([ev("step_failed", { step: "evaluate", error: "x" }, 5)], new Date("2026-11-22T10:00:01.000Z"));
    const [completed] = stampAccepted([ev("step_completed", { step: "evaluate", turns: 1 }, 5)], new Date("2026-11-22T10:00:02.000Z"));
    expect(sameInEveryOrder([failed as AgentEvent, completed as AgentEvent], runTopic).steps.evaluate.status).toBe("completed");
    const [completedFirst] = stampAccepted([ev("step_completed", { step: "implement", turns: 1 }, 5)], new Date("2026-11-22T10:00:01.000Z"));
    const [failedLater] = stampAccepted([ev("step_failed", { step: "implement", error: "x" }, 5)], new Date("2026-11-22T10:00:02.000Z"));
    expect(sameInEveryOrder([completedFirst as AgentEvent, failedLater as AgentEvent], runTopic).steps.implement.status).toBe("failed");
  });

  it("alphas: the earliest registration, the latest name and evaluation, in every order", () => {
    const events = [
      ev("alpha.registered", { alpha_id: "a1", name: "first", expression: "rank(close)" }, 1),
      ev("alpha.registered", { alpha_id: "a1", name: "renamed" }, 3),
      ev("alpha.registered", { alpha_id: "a1" }, 4),
      ev("alpha.evaluated", { alpha_id: "a1", metrics: { sharpe: 1 }, passed: false }, 2),
      ev("alpha.evaluated", { alpha_id: "a1", metrics: { sharpe: 2 }, passed: true }, 5),
      ev("alpha.registered", { alpha_id: "a0", name: "other" }, 2),
    ];
    const t = sameInEveryOrder(events, runTopic);
    expect(topicSummary(t).alphas).toEqual([
      { id: "a0", name: "other", expression: null, metrics: null, passed: null, registered_at: at(2), evaluated_at: null },
      { id: "a1", name: "renamed", expression: "rank(close)", metrics: { sharpe: 2 }, passed: true, registered_at: at(1), evaluated_at: at(5) },
    ]);
  });

  it("random event sets over two steps, with ties in time, give one topic in random orders", () => {
    const random = rng(20261122);
    const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)] as T;
    for (let trial = 0; trial < 300; trial++) {
      const events = Array.from({ length: 3 + Math.floor(random() * 7) }, (): AgentEvent => {
        const step = pick(["explore", "evaluate"]);
        const minute = Math.floor(random() * 4);
        switch (pick(["start", "start", "complete", "fail", "usage", "alpha", "eval", "sync"])) {
          case "start":
            return ev("step_started", random() < 0.5 ? { step } : { step, max_turns: 1 + Math.floor(random() * 50) }, minute);
          case "complete":
            return ev("step_completed", { step, turns: Math.floor(random() * 20), ...(random() < 0.5 ? { cost_usd: random() } : {}) }, minute);
          case "fail":
            return ev("step_failed", { step, error: `e${Math.floor(random() * 3)}`, ...(random() < 0.5 ? { turns: Math.floor(random() * 20) } : {}) }, minute);
          case "usage":
            return ev("usage.reported", { step, tools: [{ name: pick(["bash", "web", "read"]), calls: 1, duration_ms: 2, errors: 0 }], turns: Math.floor(random() * 20), cost_usd: random() }, minute);
          case "alpha":
            return ev("alpha.registered", { alpha_id: pick(["a1", "a2"]), ...(random() < 0.7 ? { name: pick(["x", "y", "z"]) } : {}) }, minute);
          case "eval":
            return ev("alpha.evaluated", { alpha_id: pick(["a1", "a2"]), metrics: { s: random() }, passed: random() < 0.5 }, minute);
          default:
            return ev("workspace.sync", { files: Array.from({ length: Math.floor(random() * 3) }, (_, i) => ({ path: `f${i}`, size: 1 })) }, minute);
        }
      });
      const want = canonical(runTopic(events));
      for (let k = 0; k < 20; k++) {
        const order = [...events].sort(() => random() - 0.5);
        const got = runTopic(order);
        expect(canonical(got), `trial ${trial}: ${order.map((e) => `${e.type}${JSON.stringify(e.data)}@${e.occurred_at}`).join(", ")}`).toBe(want);
        expect(currentStep(got)).toBe(currentStep(runTopic(events)));
      }
    }
  });
});

describe("topic reducer: events stamped as requests stamp them, at shared instants, give one topic in every order", () => {
  // Ties at one instant are ordered within a request by position and across requests by some
  // rule: the order must be one total order, or three events can form a cycle and the winner
  // depend on which arrived last.
  const stamped = (acceptedAt: string, events: AgentEvent[]) => stampAccepted(events, new Date(acceptedAt));

  it("two starts of one request and one of another at one instant: one latest start whatever the ids", () => {
    // Ids picked so that position, id and id would disagree: z before m in the request, m < p < z.
    const sameMinute = (id: string, maxTurns: number) => ev("step_started", { step: "explore", max_turns: maxTurns }, 7, id);
    const one = stamped("2026-11-22T11:00:00.000Z", [sameMinute("z", 1), sameMinute("m", 2)]);
    const other = stamped("2026-11-22T11:00:05.000Z", [sameMinute("p", 3)]);
    const t = sameInEveryOrder([...one, ...other], runTopic);
    expect(t.steps.explore.max_turns).toBe(3);
  });

  it("a failure and a completion of one request and a completion of another at one instant: one ending", () => {
    const end = (type: "step_failed" | "step_completed", id: string) =>
      ev(type, type === "step_failed" ? { step: "review", error: "x" } : { step: "review", turns: 4 }, 7, id);
    const one = stamped("2026-11-22T11:00:00.000Z", [end("step_failed", "a"), end("step_completed", "b")]);
    const other = stamped("2026-11-22T11:00:05.000Z", [end("step_completed", "c")]);
    sameInEveryOrder([...one, ...other], runTopic);
    const reversed = stamped("2026-11-22T11:00:00.000Z", [end("step_completed", "c2")]);
    const later = stamped("2026-11-22T11:00:05.000Z", [end("step_failed", "a2"), end("step_completed", "b2")]);
    sameInEveryOrder([...reversed, ...later], runTopic);
  });

  it("random requests of events over two steps, many at one instant, give one topic in random orders", () => {
    const random = rng(20261207);
    const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)] as T;
    for (let trial = 0; trial < 300; trial++) {
      const requests = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, r) => {
        const events = Array.from({ length: 1 + Math.floor(random() * 4) }, (): AgentEvent => {
          const step = pick(["explore", "evaluate"]);
          // Mostly one instant; sometimes none given, so the request's instant stands in.
          const minute = random() < 0.8 ? 5 : Math.floor(random() * 3) + 4;
          const e = (() => {
            switch (pick(["start", "start", "complete", "fail", "usage"])) {
              case "start":
                return ev("step_started", { step, max_turns: 1 + Math.floor(random() * 50) }, minute);
              case "complete":
                return ev("step_completed", { step, turns: Math.floor(random() * 20), cost_usd: Math.round(random() * 100) / 100 }, minute);
              case "fail":
                return ev("step_failed", { step, error: `e${Math.floor(random() * 3)}`, turns: Math.floor(random() * 20) }, minute);
              default:
                return ev("usage.reported", { step, tools: [{ name: pick(["bash", "web"]), calls: 1, duration_ms: 2, errors: 0 }], turns: Math.floor(random() * 20), cost_usd: 0.5 }, minute);
            }
          })();
          // Ids in random order, so they neither follow positions nor requests.
          return { ...e, id: `x${Math.floor(random() * 1e6)}-${e.id}`, ...(random() < 0.2 ? { occurred_at: undefined } : {}) };
        });
        return stamped(`2026-11-22T10:05:0${r}.000Z`, events);
      });
      const events = requests.flat();
      const want = canonical(runTopic(events));
      for (let k = 0; k < 20; k++) {
        const order = [...events].sort(() => random() - 0.5);
        expect(canonical(runTopic(order)), `trial ${trial}: ${order.map((e) => `${e.type}#${e.id}${JSON.stringify(e.data)}@${e.occurred_at}/${e.accepted_at}#${e.accepted_index}`).join(", ")}`).toBe(want);
      }
    }
  });
});

describe("topic reducer: late history that changes nothing shown is accepted as unchanged (neither logged nor broadcast)", () => {
  const apply = (t: TopicState, e: AgentEvent) => applyTopicEvent(t, e, NOW);

  it("an evaluation, an ending or a usage report older than what is shown is unchanged, keeping updated_at", () => {
    const t = runTopic([
      ev("step_completed", { step: "design", turns: 3 }, 5),
      ev("alpha.evaluated", { alpha_id: "a1", metrics: { sharpe: 2.1 }, passed: true }, 6),
      ev("usage.reported", { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }], turns: 7 }, 6),
      ev("step_started", { step: "review" }, 5),
    ]);
    const late = [
      ev("alpha.evaluated", { alpha_id: "a1", metrics: { sharpe: -0.5 }, passed: false }, 1),
      ev("step_failed", { step: "design", error: "old" }, 2),
      ev("step_completed", { step: "design", turns: 1 }, 3),
      // A report from before the step's latest start: an earlier run's, dropped. (One kept for
      // the run is news even when nothing shown moves: a later event can bring it into view.)
      ev("usage.reported", { step: "review", tools: [{ name: "bash", calls: 1 }], turns: 4 }, 1),
      // Loose data: an alpha event's own `step` field does not make it a step event.
      ev("alpha.evaluated", { alpha_id: "a1", step: "design", metrics: { sharpe: 0 }, passed: false }, 0),
    ];
    for (const e of late) {
      const out = apply(t, e);
      expect(out, JSON.stringify(e)).toMatchObject({ accepted: true, unchanged: true });
      expect(topicSummary(out.state)).toEqual(topicSummary(t));
    }
    // Later ones are news.
    expect(apply(t, ev("alpha.evaluated", { alpha_id: "a1", metrics: { sharpe: 3 }, passed: true }, 7))).not.toHaveProperty("unchanged");
    expect(apply(t, ev("step_failed", { step: "design", error: "new" }, 7))).not.toHaveProperty("unchanged");
    expect(apply(t, ev("usage.reported", { step: "explore", tools: [], turns: 8 }, 1))).not.toHaveProperty("unchanged");
  });

  it("an older workspace.sync is unchanged; the platform's announcement of a write is news whatever its time", () => {
    const t = runTopic([ev("workspace.sync", { files: [{ path: "a", size: 1 }] }, 5)]);
    expect(apply(t, ev("workspace.sync", { files: [] }, 4))).toMatchObject({ accepted: true, unchanged: true });
    expect(apply(t, ev("workspace.sync", { files: [] }, 4, "workspace:w1"))).not.toHaveProperty("unchanged");
    expect(apply(t, ev("workspace.sync", { files: [] }, 6))).not.toHaveProperty("unchanged");
  });

  it("a repeat that changes nothing shown keeps its clock, so later arrivals still apply in any order", () => {
    const first = runTopic([ev("alpha.registered", { alpha_id: "a1", name: "x" }, 1)]);
    const again = apply(first, ev("alpha.registered", { alpha_id: "a1", name: "x" }, 3));
    expect(again).toMatchObject({ accepted: true, unchanged: true });
    // A rename that occurred between the two is older than the name shown: not taken.
    expect(topicSummary(apply(again.state, ev("alpha.registered", { alpha_id: "a1", name: "y" }, 2)).state).alphas[0]?.name).toBe("x");
  });

  it("a late start on a completed step is news (started_at, the duration) and says the step's status, not running", () => {
    const t = runTopic([ev("step_completed", { step: "design", turns: 3 }, 5)]);
    const out = apply(t, ev("step_started", { step: "design" }, 0));
    expect(out).toMatchObject({ accepted: true, logged: { step_status: "completed" } });
    expect(out).not.toHaveProperty("unchanged");
    expect(topicSummary(out.state).steps.design).toMatchObject({ status: "completed", started_at: at(0), duration_ms: 5 * 60_000 });
    expect(apply(newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW }), ev("step_started", { step: "design" }, 0))).toMatchObject({ logged: { step_status: "running" } });
  });
});

describe("session reducer: a status that occurred before the current one is history, not refused", () => {
  const status = (s: string, minute: number, reason?: string) => ev("update_status", { status: s, ...(reason ? { reason } : {}) }, minute);

  it("`completed` arriving before `running` ends completed with nothing rejected", () => {
    const out = applySessionEvent(runSession([status("completed", 2, "done")]), status("running", 1), NOW);
    expect(out.accepted).toBe(true);
    expect(out.state).toMatchObject({ status: "completed", status_reason: "done", rejected_events: [] });
  });

  it("a consistent timeline gives one session in every order, with nothing rejected", () => {
    const s = sameInEveryOrder([status("running", 1, "go"), status("running", 2), status("failed", 3, "out of budget"), ev("insight_started", { insight_id: "i1" }, 1)], runSession);
    expect(s).toMatchObject({ status: "failed", status_reason: "out of budget", status_at: at(3), rejected_events: [] });
    expect(sameInEveryOrder([status("created", 0), status("running", 1, "go")], runSession)).toMatchObject({ status: "running", status_reason: "go", rejected_events: [] });
  });

  it("still refuses a genuinely forbidden change: running after the session ended, another ending, or one with no occurred_at", () => {
    const ended = runSession([status("running", 1), status("completed", 2)]);
    for (const e of [status("running", 3), status("failed", 1), status("created", 3), { ...status("running", 0), occurred_at: undefined }]) {
      const out = applySessionEvent(ended, e, NOW);
      expect(out.accepted, JSON.stringify(e)).toBe(false);
      expect(out.state.status).toBe("completed");
      expect(out.state.rejected_events.map((r) => r.event_id)).toEqual([e.id]);
    }
  });

  it("a session stored before status_at refuses as before", () => {
    const { status_at: _at, ...old } = runSession([status("completed", 2)]);
    expect(applySessionEvent(old, status("running", 1), NOW).accepted).toBe(false);
  });
});

describe("topic stream: a watcher applying only what the hub logs ends where the hub is", () => {
  /** The hub's state after `order`, and a watcher's that applied only the events it was sent (not `unchanged`). */
  function hubAndWatcher(order: AgentEvent[]) {
    let hub = newTopic({ id: "t1", session_id: "s1", team_id: "a", now: NOW });
    let watcher = hub;
    order.forEach((e, i) => {
      const now = `2026-11-22T12:00:${String(i).padStart(2, "0")}.000Z`;
      const out = applyTopicEvent(hub, e, now);
      hub = out.state;
      if (out.accepted && !out.unchanged) watcher = applyTopicEvent(watcher, e, now).state;
    });
    return { hub: canonical(topicSummary(hub)), watcher: canonical(topicSummary(watcher)) };
  }

  const sets: [string, () => AgentEvent[]][] = [
    // A re-run's report arriving before its start, while the failure's own figures are shown.
    ["report before its re-run's start", () => [ev("step_started", { step: "design" }, 1), ev("step_failed", { step: "design", error: "x", turns: 3, cost_usd: 0.3 }, 3), ev("usage.reported", { step: "design", tools: [], turns: 2, cost_usd: 0.1 }, 5), ev("step_started", { step: "design" }, 4)]],
    // A completion without figures: the reports are its usage.
    [
      "re-run completed without figures",
      () => [
        ev("step_started", { step: "explore" }, 1),
        ev("usage.reported", { step: "explore", turns: 4, cost_usd: 0.4, tools: [{ name: "bash", calls: 1 }] }, 2),
        ev("step_failed", { step: "explore", error: "x" }, 3),
        ev("step_started", { step: "explore" }, 4),
        ev("usage.reported", { step: "explore", turns: 1, cost_usd: 0.1, tools: [{ name: "read", calls: 2 }] }, 5),
        ev("step_completed", { step: "explore", turns: 1 }, 6),
      ],
    ],
    ["late verdicts", () => [ev("alpha.evaluated", { alpha_id: "a1", passed: true, metrics: { sharpe: 2.1 } }, 6), ev("alpha.evaluated", { alpha_id: "a1", passed: false, metrics: { sharpe: -0.5 } }, 1), ev("step_completed", { step: "design", turns: 2 }, 5), ev("step_started", { step: "design" }, 0)]],
  ];
  for (const [name, make] of sets) {
    it(`in every order: ${name}`, () => {
      for (const order of permutations(make())) {
        const { hub, watcher } = hubAndWatcher(order);
        expect(watcher, order.map((e) => `${e.type}@${e.occurred_at}`).join(", ")).toBe(hub);
      }
    });
  }
});

describe("topic reducer: a report's tool names are counted for its own run, whatever arrives first", () => {
  it("150 names in a failed run and 100 in its re-run: the re-run's report is accepted before or after its start", () => {
    // Known limit: a report is refused by what the step keeps when it arrives, so a re-run's
    // report that arrives before the failure it follows still counts the failed run's names
    // (the queue would have to reorder the runner's sends twice). Here the failure came first.
    const names = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ name: `tool-${from + i}`, calls: 1 }));
    const events = [
      ev("step_started", { step: "explore" }, 1),
      ev("usage.reported", { step: "explore", tools: names(0, 150) }, 2),
      ev("step_failed", { step: "explore", error: "x" }, 3),
      ev("step_started", { step: "explore" }, 4),
      ev("usage.reported", { step: "explore", tools: names(1000, 100) }, 5),
    ];
    const [s1, u1, failed, s2, u2] = events as [AgentEvent, AgentEvent, AgentEvent, AgentEvent, AgentEvent];
    const want = canonical(runTopic(events));
    for (const rest of permutations([s2, u2])) {
      const t = runTopic([s1, u1, failed, ...rest]);
      expect(canonical(t), rest.map((e) => e.type).join(", ")).toBe(want);
      expect(t.steps.explore.status).toBe("running");
      expect(t.steps.explore.tools).toHaveLength(100);
    }
  });
});
