import { type AgentEvent, acceptanceOrder, dataOf, eventTime, instant, invalidData, ownEntry } from "./events";
import { MAX_STATE_BYTES, jsonBytes } from "./state-size";
import { DEFAULT_MAX_TURNS, STEPS, type Step, isStep } from "./steps";

export type StepStatus = "pending" | "running" | "completed" | "failed";

export interface ToolUsage {
  name: string;
  calls: number;
  duration_ms: number;
  errors: number;
}

/**
 * A step as shown. Every field is derived from the step's `clock` (what the events said, each
 * kept by the latest `occurred_at`), so the same events give the same record whatever order
 * they arrive in.
 */
export interface StepRecord {
  status: StepStatus;
  turns: number;
  max_turns: number;
  cost_usd: number;
  duration_ms: number | null;
  tools: ToolUsage[];
  /** The latest start. */
  started_at: string | null;
  /** The latest ending; null while a re-run after it runs. */
  ended_at: string | null;
  error: string | null;
  /** Kept for the order-independent rules, not shown (absent on records stored before it). */
  clock?: StepClock;
}

/**
 * When an event occurred, and what orders two at the same instant: the order accepted
 * (`ord`, see acceptanceOrder: the request's instant, then the position in it), else the event id.
 */
export interface Stamp {
  at: string;
  id: string;
  ord?: string;
}

export interface StepClock {
  /** The latest `step_started`. */
  start: Stamp | null;
  /** The latest `step_started` that set a turn budget. */
  budget: (Stamp & { max_turns: number }) | null;
  /** The latest ending, with what it reported. */
  end: (Stamp & { status: "completed" | "failed"; turns: number | null; cost_usd: number | null; duration_ms: number | null; error: string | null }) | null;
  /**
   * The `usage.reported` of the latest run: those that did not occur before the latest start,
   * in spans by time (see `addReport`). Absent on clocks stored before runs were told apart
   * (they kept `usage`, the highest totals across every run; `clockOf` reads it).
   */
  reports?: UsageSpan[];
}

/**
 * Reports that occurred from `from` to `to` (one report: the two are its stamp), with the
 * highest running totals among them and their tools summed.
 */
export interface UsageSpan {
  from: Stamp;
  to: Stamp;
  turns: number;
  cost_usd: number;
  tools: ToolUsage[];
}

/**
 * Spans a step keeps for its latest run. Each report is its own span while they are few, so a
 * start that arrives after reports that occurred on both sides of it (the queue keeps no
 * order) can still tell which are its run's; past this the earliest two are merged.
 */
export const MAX_USAGE_SPANS = 16;

export interface Alpha {
  id: string;
  name: string | null;
  expression: string | null;
  metrics: Record<string, number> | null;
  passed: boolean | null;
  /** The earliest registration. */
  registered_at: string | null;
  /** The latest evaluation, whose metrics and verdict are shown. */
  evaluated_at: string | null;
  /** Which registration gave the name and the expression, and which evaluation is shown; not shown. */
  clock?: { name?: Stamp; expression?: Stamp; evaluated?: Stamp };
}

export type TopicStatus = "created" | "running" | "completed" | "failed";

export interface TopicState {
  id: string;
  session_id: string;
  team_id: string;
  hypothesis: string | null;
  created_at: string;
  updated_at: string;
  steps: Record<Step, StepRecord>;
  alphas: Record<string, Alpha>;
  /** What `alphas` takes as JSON, kept as they change (absent in states stored before: then counted once). */
  alpha_bytes?: number;
  last_workspace_sync: { at: string; files: number; event_id?: string } | null;
}

/**
 * A topic's state is one row of its hub's SQLite, which Cloudflare caps at 2 MB, and its
 * alphas are most of what grows in it (an expression may take 10,000 characters): an alpha
 * event that would take them past 1 MiB is refused, never the row write that would fail
 * every later event of the topic.
 */
export const MAX_ALPHA_BYTES = 1024 * 1024;
/** Distinct tool names a step keeps (names up to 200 characters: six steps stay under 300 KB). */
export const MAX_TOOLS_PER_STEP = 200;

function alphaBytes(state: TopicState): number {
  return state.alpha_bytes ?? jsonBytes(state.alphas);
}

/**
 * What applying a topic event did. `unchanged` (as for a session, src/domain/session.ts):
 * accepted, its id spent and its clocks kept, but nothing the topic shows changed — late
 * history such as an evaluation older than the one shown, an ending older than the one shown,
 * an older workspace.sync — so the hub neither logs nor broadcasts it: a watcher applying the
 * stream's events in order must not end on a stale verdict. `logged`: fields the hub adds to
 * the event it logs and broadcasts (see `step_status` in applyTopicEventData).
 */
export type TopicOutcome =
  | { accepted: true; state: TopicState; unchanged?: true; logged?: { step_status: StepStatus } }
  | { accepted: false; state: TopicState; reason: string };

export function newTopic(init: {
  id: string;
  session_id: string;
  team_id: string;
  hypothesis?: string | null;
  max_turns?: Partial<Record<Step, number>>;
  now: string;
}): TopicState {
  const steps = {} as Record<Step, StepRecord>;
  for (const step of STEPS) {
    steps[step] = {
      status: "pending",
      turns: 0,
      max_turns: init.max_turns?.[step] ?? DEFAULT_MAX_TURNS[step],
      cost_usd: 0,
      duration_ms: null,
      tools: [],
      started_at: null,
      ended_at: null,
      error: null,
    };
  }
  return {
    id: init.id,
    session_id: init.session_id,
    team_id: init.team_id,
    hypothesis: init.hypothesis ?? null,
    created_at: init.now,
    updated_at: init.now,
    steps,
    alphas: {},
    last_workspace_sync: null,
  };
}

/** Derived, never stored: a failed step fails the topic until it is re-run; evaluate completes it. */
export function topicStatus(state: TopicState): TopicStatus {
  const records = STEPS.map((s) => state.steps[s]);
  if (records.some((r) => r.status === "running")) return "running";
  if (records.some((r) => r.status === "failed")) return "failed";
  if (state.steps.evaluate.status === "completed") return "completed";
  if (records.some((r) => r.status !== "pending")) return "running";
  return "created";
}

/** The step running now (the latest started), else the last step that has run, else null. */
export function currentStep(state: TopicState): Step | null {
  let running: Step | null = null;
  for (const s of STEPS) {
    const r = state.steps[s];
    if (r.status === "running" && (running === null || instant(r.started_at) >= instant(state.steps[running].started_at))) running = s;
  }
  if (running) return running;
  for (const s of [...STEPS].reverse()) if (state.steps[s].status !== "pending") return s;
  return null;
}

/**
 * Applies one topic-level event. Queues keep no order between requests, so every rule is
 * order-independent where it matters: a step's record only moves forward (a late
 * `step_started` never undoes `step_completed`); a failed step may be re-run by a start that
 * occurred after the failure; between two endings the later one (by `occurred_at`) wins.
 */
export function applyTopicEvent(state: TopicState, event: AgentEvent, now: string): TopicOutcome {
  let outcome: TopicOutcome;
  try {
    outcome = applyTopicEventData(state, event, now);
  } catch (error) {
    const reason = invalidData(error);
    if (reason === null) throw error;
    return { accepted: false, state, reason };
  }
  if (!outcome.accepted) return outcome;
  const kept = withinRow(state, outcome.state, event.type);
  if (!kept.accepted) return kept;
  if (outcome.unchanged || !shownChanged(state, kept.state, event)) {
    // Nothing shown changed, so nothing was updated: updated_at stays; the clocks are kept
    // (they decide how later events apply, whatever order they come in).
    return { accepted: true, state: { ...kept.state, updated_at: state.updated_at }, unchanged: true };
  }
  return { ...kept, ...(outcome.logged ? { logged: outcome.logged } : {}) };
}

/**
 * Whether what the topic shows (its summary, updated_at aside) differs after the event: only
 * the record the event names is compared (a step, one alpha), as nothing else can change.
 * Status and current step derive from the steps. workspace.sync is decided where it is applied.
 */
function shownChanged(prior: TopicState, next: TopicState, event: AgentEvent): boolean {
  // By type: data is loose, so an alpha event may carry a `step` of its own, and vice versa.
  const data = event.data as { step?: unknown; alpha_id?: unknown };
  if (STEP_EVENTS.has(event.type) && typeof data.step === "string" && isStep(data.step)) {
    const [before, after] = [prior.steps[data.step], next.steps[data.step]];
    // A report kept for its run is news even when nothing shown moved (the failure's own
    // figures are shown): a start arriving later makes it the step's usage, and a watcher
    // applying the stream must have had it. One dropped as an earlier run's says `unchanged`
    // where it is applied and never reaches here.
    if (event.type === "usage.reported") return true;
    return !sameJson(shownStep(before), shownStep(after));
  }
  if (ALPHA_EVENTS.has(event.type) && typeof data.alpha_id === "string") {
    const before = ownEntry(prior.alphas, data.alpha_id);
    const after = ownEntry(next.alphas, data.alpha_id);
    return before === undefined || after === undefined || !sameJson(shownAlpha(before), shownAlpha(after));
  }
  return true;
}

const STEP_EVENTS = new Set(["step_started", "step_completed", "step_failed", "usage.reported"]);
const ALPHA_EVENTS = new Set(["alpha.registered", "alpha.evaluated"]);

/** Deep equality of JSON values, whatever order their keys were written in. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * A topic must always be able to start and end its steps, however much usage and alphas it
 * took: what the six steps' starts and endings can take at most (an error of 10,000
 * characters, 6 bytes each escaped, kept twice; the stamps of start, ending and budget with
 * event ids of 200 characters) is kept free of everything else. test/reducers-bounds.test.ts
 * measures that worst case against this.
 */
export const STEP_LIFECYCLE_RESERVE = STEPS.length * 130_000;
const STEP_LIFECYCLE = new Set(["step_started", "step_completed", "step_failed"]);

/**
 * The per-field bounds (1 MiB of alphas, 200 tool names a step, 10,000 characters an error)
 * count characters or entries, not what the row takes: 200 names of 200 control characters
 * are 1.2 KB each as JSON, and a step's error is kept twice (`error`, `clock.end.error`), so
 * six steps within them took 2.1 MB without one alpha. What the row would take is measured
 * instead, and an event that would take it past MAX_STATE_BYTES is refused, naming why
 * (the consumer lists it on the session). A state that grows no further is let through:
 * one stored over the line before this check may still shrink.
 */
function withinRow(prior: TopicState, next: TopicState, type: string): TopicOutcome {
  const lifecycle = STEP_LIFECYCLE.has(type);
  const line = lifecycle ? MAX_STATE_BYTES : MAX_STATE_BYTES - STEP_LIFECYCLE_RESERVE;
  const bytes = topicStateBytes(next);
  if (bytes <= line || bytes <= topicStateBytes(prior)) return { accepted: true, state: next };
  const why = lifecycle ? `over the ${MAX_STATE_BYTES} one topic keeps (its row is capped at 2 MB)` : `over the ${line} a topic keeps for usage and alphas (the rest of its row, capped at 2 MB, is kept for its steps' starts and endings)`;
  return { accepted: false, state: prior, reason: `the topic's state would take ${bytes} bytes as JSON, ${why}; report fewer or shorter tool names, errors or alphas (in a new topic)` };
}

/**
 * What the hub's row takes (JSON.stringify of the state, in UTF-8). The alphas, up to 1 MiB,
 * are counted as kept (alpha_bytes, exact) rather than serialised again for every event;
 * `{}` stands in for them.
 */
export function topicStateBytes(state: TopicState): number {
  return jsonBytes({ ...state, alphas: {} }) - 2 + alphaBytes(state);
}

function applyTopicEventData(state: TopicState, event: AgentEvent, now: string): TopicOutcome {
  // One canonical form, compared as instants: a queued event or a stored state may hold
  // another form of the same time (an offset, fewer fraction digits).
  const ord = acceptanceOrder(event);
  const stamp: Stamp = { at: eventTime(event, now), id: event.id, ...(ord !== undefined ? { ord } : {}) };
  const at = stamp.at;
  const withStep = (step: Step, clock: (c: StepClock) => StepClock): TopicOutcome => {
    const r = state.steps[step];
    const record = derive(r, clock(clockOf(r)));
    return { accepted: true, state: { ...state, updated_at: now, steps: { ...state.steps, [step]: record } } };
  };
  const withAlpha = (id: string, change: (prior: Alpha) => Alpha): TopicOutcome => {
    const prior = ownEntry(state.alphas, id);
    const alpha = change(prior ?? emptyAlpha(id));
    // A new alpha also adds its key ("id": and, after the first, a comma).
    const keyBytes = prior ? 0 : jsonBytes(id) + 1 + (Object.keys(state.alphas).length > 0 ? 1 : 0);
    const bytes = alphaBytes(state) - (prior ? jsonBytes(prior) : 0) + keyBytes + jsonBytes(alpha);
    if (bytes > MAX_ALPHA_BYTES) return { accepted: false, state, reason: `the topic's alphas would take ${bytes} bytes, over the ${MAX_ALPHA_BYTES} a topic keeps; register fewer or smaller ones (in a new topic)` };
    return { accepted: true, state: { ...state, updated_at: now, alphas: { ...state.alphas, [id]: alpha }, alpha_bytes: bytes } };
  };
  switch (event.type) {
    case "step_started": {
      const data = dataOf({ ...event, type: "step_started" });
      if (!isStep(data.step)) return unknownStep(state, data.step);
      const outcome = withStep(data.step, (c) => {
        const start = latest(c.start, stamp);
        // A later start begins another run: what was reported before it was an earlier run's.
        const reports = start === c.start ? c.reports : (c.reports ?? []).filter((span) => !happenedAfter(start, span.from));
        return { ...c, start, reports, budget: data.max_turns === undefined ? c.budget : latest(c.budget, { ...stamp, max_turns: data.max_turns }) };
      });
      // A start that arrives after the step's ending and occurred before it changes what is
      // shown (started_at, the measured duration), so it is broadcast, as it came; but a
      // browser that took `step_started` to mean "running" would show a finished step running.
      // So every logged step_started carries `step_status`, the step's status after it
      // ("running", or the ending's status for such a late start). The summary and the
      // stream's snapshot stay the truth; this only keeps a naive watcher from being misled.
      return outcome.accepted ? { ...outcome, logged: { step_status: outcome.state.steps[data.step].status } } : outcome;
    }
    case "step_completed": {
      const data = dataOf({ ...event, type: "step_completed" });
      if (!isStep(data.step)) return unknownStep(state, data.step);
      const end = { ...stamp, status: "completed" as const, turns: data.turns, cost_usd: data.cost_usd ?? null, duration_ms: data.duration_ms ?? null, error: null };
      return withStep(data.step, (c) => ({ ...c, end: latestEnd(c.end, end) }));
    }
    case "step_failed": {
      const data = dataOf({ ...event, type: "step_failed" });
      if (!isStep(data.step)) return unknownStep(state, data.step);
      // A failed run's own cost, as a completion's: without it the step would show the usage
      // reported, which a start after this failure leaves behind with its run.
      const end = { ...stamp, status: "failed" as const, turns: data.turns ?? null, cost_usd: data.cost_usd ?? null, duration_ms: data.duration_ms ?? null, error: data.error };
      return withStep(data.step, (c) => ({ ...c, end: latestEnd(c.end, end) }));
    }
    case "usage.reported": {
      const data = dataOf({ ...event, type: "usage.reported" });
      if (!isStep(data.step)) return unknownStep(state, data.step);
      const clock = clockOf(state.steps[data.step]);
      // A report that occurred before the latest start was an earlier run's: accepted, not counted.
      if (clock.start !== null && happenedAfter(clock.start, stamp)) return { accepted: true, state, unchanged: true };
      // Tools are kept by name, in the topic's one row (2 MB at most on Cloudflare): a report
      // that would make a step's run track more than MAX_TOOLS_PER_STEP names is refused. The
      // run's names, as shown (runReports), so an earlier run's spans that a start not yet
      // arrived will drop do not count: the verdict does not depend on arrival order.
      const span: UsageSpan = { from: stamp, to: stamp, turns: data.turns ?? 0, cost_usd: data.cost_usd ?? 0, tools: mergeTools([], data.tools) };
      const reports = addReport(clock.reports ?? [], span);
      const named = spanTools(runReports({ ...clock, reports })).length;
      if (named > MAX_TOOLS_PER_STEP) return { accepted: false, state, reason: `step ${data.step} would track ${named} tool names; at most ${MAX_TOOLS_PER_STEP}` };
      return withStep(data.step, (c) => ({ ...c, reports }));
    }
    case "alpha.registered": {
      const data = dataOf({ ...event, type: "alpha.registered" });
      return withAlpha(data.alpha_id, (prior) => {
        const clock = alphaClock(prior);
        // Per field, the latest registration that gave it; registered when first registered.
        const name = data.name !== undefined && isLater(stamp, clock.name);
        const expression = data.expression !== undefined && isLater(stamp, clock.expression);
        return {
          ...prior,
          name: name ? (data.name ?? null) : prior.name,
          expression: expression ? (data.expression ?? null) : prior.expression,
          registered_at: prior.registered_at !== null && instant(prior.registered_at) <= instant(at) ? prior.registered_at : at,
          clock: { ...clock, ...(name ? { name: stamp } : {}), ...(expression ? { expression: stamp } : {}) },
        };
      });
    }
    case "alpha.evaluated": {
      const data = dataOf({ ...event, type: "alpha.evaluated" });
      return withAlpha(data.alpha_id, (prior) => {
        const clock = alphaClock(prior);
        if (!isLater(stamp, clock.evaluated)) return prior;
        return { ...prior, metrics: data.metrics, passed: data.passed, evaluated_at: at, clock: { ...clock, evaluated: stamp } };
      });
    }
    case "workspace.sync": {
      const data = dataOf({ ...event, type: "workspace.sync" });
      const prior = state.last_workspace_sync;
      // Older than the sync already applied: nothing to tell, unless it is the platform's own
      // announcement of a workspace write or delete (id `workspace:…`), which names the files
      // that one write changed, news whatever its time (README: every write and delete is
      // announced on the stream; two writes may reach the hub in either order).
      if (prior && !isLater(stamp, { at: prior.at, id: prior.event_id ?? "" })) {
        return { accepted: true, state: { ...state, updated_at: now }, ...(event.id.startsWith("workspace:") ? {} : { unchanged: true as const }) };
      }
      return { accepted: true, state: { ...state, updated_at: now, last_workspace_sync: { at, files: data.files.length, event_id: event.id } } };
    }
    default:
      return { accepted: false, state, reason: `${event.type} is not a topic-level event` };
  }
}

/**
 * The step as shown, from its clock. A step with no ending runs once started; an ending is
 * final against starts, except that a start after a failure re-runs the step (a start after
 * a completion does not reopen it); between two endings the later one wins. An ending's own
 * figures are shown where it gave them, otherwise the highest usage its run reported, and for
 * the duration the time from the start to the ending (`measured`). Usage and tools are the
 * latest run's only (the reports not before the latest start): a re-run starts from nothing.
 */
function derive(r: StepRecord, clock: StepClock): StepRecord {
  const { start, end } = clock;
  const reports = runReports(clock);
  const usage = { turns: Math.max(0, ...reports.map((s) => s.turns)), cost_usd: Math.max(0, ...reports.map((s) => s.cost_usd)) };
  const rerun = end !== null && end.status === "failed" && start !== null && happenedAfter(start, end);
  const status: StepStatus = end !== null && !rerun ? end.status : start !== null ? "running" : "pending";
  const ended = status === "completed" || status === "failed" ? end : null;
  return {
    ...r,
    status,
    turns: ended?.turns ?? usage.turns,
    max_turns: clock.budget?.max_turns ?? r.max_turns,
    cost_usd: ended?.cost_usd ?? usage.cost_usd,
    duration_ms: ended === null ? null : (ended.duration_ms ?? measured(start, ended)),
    started_at: start?.at ?? null,
    ended_at: ended?.at ?? null,
    error: ended?.error ?? null,
    tools: spanTools(reports),
    clock,
  };
}

/**
 * Which run a report belongs to is decided by `occurred_at`: the latest start not after it
 * (a report at the same instant as a start, not ordered by one request, is that start's run).
 * Reports can arrive before their start, so the latest run's are kept as spans by time: when
 * a later start arrives, the spans that began before it are dropped whole. That is exact, in
 * every arrival order, while the kept reports fit MAX_USAGE_SPANS spans and twice
 * MAX_TOOLS_PER_STEP tool entries; past either the earliest two spans are merged, and a span that then straddles
 * a start arriving later is dropped whole with the earlier run, taking the later run's reports
 * in it along (that run's later reports still count). The spans hold the run's tools apart from
 * the record's `tools` (their sum): at most MAX_TOOLS_PER_STEP entries more a step.
 */
/**
 * The reports of the step's latest run: those kept (none before the latest start), less, when
 * the latest ending is a failure and some report occurred after it, those that did not: a
 * report after a failure is a re-run's, whose start may not have arrived yet, so the failed
 * run's reports no longer count. Read from what is kept, never pruned by it, so the result
 * does not depend on which arrived first (the start, when it arrives, drops them for good).
 */
function runReports(clock: StepClock): UsageSpan[] {
  const spans = clock.reports ?? [];
  const end = clock.end;
  if (end === null || end.status !== "failed") return spans;
  const after = spans.filter((s) => happenedAfter(s.from, end));
  return after.length > 0 ? after : spans;
}

function addReport(spans: UsageSpan[], report: UsageSpan): UsageSpan[] {
  const within = spans.findIndex((s) => compareStamps(s.from, report.from) < 0 && compareStamps(report.from, s.to) < 0);
  let next: UsageSpan[];
  if (within >= 0) next = spans.map((s, i) => (i === within ? mergeSpans(s, report) : s));
  else next = [...spans, report].sort((a, b) => compareStamps(a.from, b.from));
  // Twice a run's names: until its start arrives, a re-run's reports are kept beside the
  // failed run's, each run up to MAX_TOOLS_PER_STEP, and merging the two would mix the runs.
  while (next.length > 1 && (next.length > MAX_USAGE_SPANS || next.reduce((n, s) => n + s.tools.length, 0) > 2 * MAX_TOOLS_PER_STEP)) {
    next = [mergeSpans(next[0] as UsageSpan, next[1] as UsageSpan), ...next.slice(2)];
  }
  return next;
}

function mergeSpans(a: UsageSpan, b: UsageSpan): UsageSpan {
  const [first, second] = compareStamps(a.from, b.from) <= 0 ? [a, b] : [b, a];
  return {
    from: first.from,
    to: compareStamps(first.to, second.to) >= 0 ? first.to : second.to,
    turns: Math.max(a.turns, b.turns),
    cost_usd: Math.max(a.cost_usd, b.cost_usd),
    tools: mergeTools(first.tools, second.tools),
  };
}

/** The run's tools: its spans' summed by name, in time order (so a sum does not depend on arrival). */
function spanTools(spans: UsageSpan[]): ToolUsage[] {
  return spans.reduce<ToolUsage[]>((tools, s) => mergeTools(tools, s.tools), []);
}

/**
 * How long a step took when its ending did not say (issue 2 asks for every step's duration):
 * from its latest start to that ending, if the start came first. A start after the ending (one
 * that did not reopen a completed step) or none known tells nothing: null.
 */
function measured(start: Stamp | null, end: Stamp): number | null {
  if (start === null || !happenedAfter(end, start)) return null;
  const ms = instant(end.at) - instant(start.at);
  return Number.isFinite(ms) && ms >= 0 ? ms : null;
}

/** A step's clock; for a record stored before clocks, what its fields still tell. */
function clockOf(r: StepRecord): StepClock {
  if (r.clock?.reports) return r.clock;
  // Stored before runs were told apart: what was reported counts as the latest start's run.
  const legacy = r.clock as (StepClock & { usage?: { turns: number; cost_usd: number } }) | undefined;
  const start = legacy ? legacy.start : r.started_at !== null ? { at: r.started_at, id: "" } : null;
  const usage = legacy ? (legacy.usage ?? { turns: 0, cost_usd: 0 }) : { turns: r.turns, cost_usd: r.cost_usd };
  const reported = usage.turns > 0 || usage.cost_usd > 0 || r.tools.length > 0;
  const at: Stamp = start ?? { at: "", id: "" };
  const reports = reported ? [{ from: at, to: at, turns: usage.turns, cost_usd: usage.cost_usd, tools: r.tools }] : [];
  if (legacy) {
    const { usage: _usage, ...rest } = legacy;
    return { ...rest, reports };
  }
  const ended = (r.status === "completed" || r.status === "failed") && r.ended_at !== null;
  return {
    start,
    budget: null,
    end: ended ? { at: r.ended_at as string, id: "", status: r.status as "completed" | "failed", turns: r.turns, cost_usd: r.cost_usd, duration_ms: r.duration_ms, error: r.error } : null,
    reports,
  };
}

/** An alpha's clock; for one stored before clocks, its fields came from events at those times. */
function alphaClock(a: Alpha): NonNullable<Alpha["clock"]> {
  if (a.clock) return a.clock;
  const registered = a.registered_at !== null ? { at: a.registered_at, id: "" } : undefined;
  return {
    ...(a.name !== null && registered ? { name: registered } : {}),
    ...(a.expression !== null && registered ? { expression: registered } : {}),
    ...(a.evaluated_at !== null ? { evaluated: { at: a.evaluated_at, id: "" } } : {}),
  };
}

/**
 * Whether `a` is taken to have come after `b`: a later instant, or at one instant later in
 * the order accepted (one request's events keep the order given; across requests the one
 * accepted later, which is a guess, but one fixed order: a rule that only sometimes tells is
 * not transitive, and then what a topic shows would depend on the order events arrived in).
 */
function happenedAfter(a: Stamp, b: Stamp): boolean {
  return compareInstantAndOrder(a, b) > 0;
}

/**
 * Orders stamps by instant, then as accepted (request instant, then position; unstamped
 * first), then by event id: one key compared field by field, so a total order (transitive:
 * sorting spans cannot depend on the order they arrived in). Agrees with `happenedAfter`
 * wherever that tells.
 */
function compareStamps(a: Stamp, b: Stamp): number {
  const d = compareInstantAndOrder(a, b);
  return d !== 0 ? d : compareText(a.id, b.id);
}

/** The instant, then the order accepted (`acceptanceOrder` sorts as text; unstamped first). */
function compareInstantAndOrder(a: Stamp, b: Stamp): number {
  const d = instant(a.at) - instant(b.at);
  if (d !== 0 && !Number.isNaN(d)) return d;
  return compareText(a.ord ?? "", b.ord ?? "");
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isLater(a: Stamp, b: Stamp | null | undefined): boolean {
  return !b || compareStamps(a, b) > 0;
}

function latest<T extends Stamp>(current: T | null, next: T): T {
  return current === null || isLater(next, current) ? next : current;
}

/**
 * The later ending, by one total order (so which ending shows cannot depend on arrival
 * order): the instant, then the order accepted (one request's endings keep the order given;
 * of two requests at one instant the one accepted later), and where neither tells (events
 * stamped before positions were) a failure wins over a completion (never hidden by it),
 * then the event id decides.
 */
function latestEnd(current: StepClock["end"], next: NonNullable<StepClock["end"]>): NonNullable<StepClock["end"]> {
  if (!current) return next;
  const d = compareInstantAndOrder(next, current);
  if (d !== 0) return d > 0 ? next : current;
  if (next.status !== current.status) return next.status === "failed" ? next : current;
  return compareText(next.id, current.id) > 0 ? next : current;
}

function unknownStep(state: TopicState, step: string): TopicOutcome {
  return { accepted: false, state, reason: `unknown step "${step}"; steps are ${STEPS.join(", ")}` };
}

function emptyAlpha(id: string): Alpha {
  return { id, name: null, expression: null, metrics: null, passed: null, registered_at: null, evaluated_at: null };
}

/**
 * A running total that stays a finite, exact JSON number: capped at Number.MAX_SAFE_INTEGER
 * (past it integers lose precision, and past Number.MAX_VALUE the sum is Infinity, which JSON
 * writes as null). Each event's values are bounded (src/domain/events.ts), so only a very long
 * run reaches the cap. A stored total that is not a number is a sum that overflowed before the
 * cap (Infinity, null in the stored JSON): it is taken as the cap, not as 0. A missing one is 0.
 */
export function cappedSum(total: unknown, added: unknown): number {
  // Both sides: a run's tools are summed from its reports, and a report converted from a
  // state stored before runs were told apart carries the old total (clockOf).
  return Math.min(storedTotal(total) + storedTotal(added), Number.MAX_SAFE_INTEGER);
}

function storedTotal(v: unknown): number {
  return v === null ? Number.MAX_SAFE_INTEGER : typeof v === "number" && !Number.isNaN(v) ? v : 0;
}

/** Sums tool usage by name; each `usage.reported` event is applied once (idempotent by id). */
export function mergeTools(current: ToolUsage[], added: Array<{ name: string; calls: number; duration_ms: number; errors: number }>): ToolUsage[] {
  const byName = new Map(current.map((t) => [t.name, { ...t }]));
  for (const t of added) {
    const prior = byName.get(t.name) ?? { name: t.name, calls: 0, duration_ms: 0, errors: 0 };
    byName.set(t.name, { name: t.name, calls: cappedSum(prior.calls, t.calls), duration_ms: cappedSum(prior.duration_ms, t.duration_ms), errors: cappedSum(prior.errors, t.errors) });
  }
  // By name, so the list does not depend on which report arrived first.
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The topic as a session summary shows it. */
export function topicSummary(state: TopicState) {
  return {
    id: state.id,
    status: topicStatus(state),
    current_step: currentStep(state),
    hypothesis: state.hypothesis,
    created_at: state.created_at,
    updated_at: state.updated_at,
    steps: Object.fromEntries(STEPS.map((s) => [s, shownStep(state.steps[s])])) as Record<Step, Omit<StepRecord, "clock">>,
    // Own entries with an id only: a topic stored before alpha ids were looked up as own
    // properties may hold an id-less entry (an alpha named "constructor" did), which no
    // index row could be written for. By id, so arrival order does not show.
    alphas: Object.entries(state.alphas)
      .flatMap(([key, a]) => (typeof a?.id === "string" && a.id === key ? [shownAlpha(a)] : []))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
  };
}
export type TopicSummary = ReturnType<typeof topicSummary>;

function shownStep({ clock: _clock, ...shown }: StepRecord): Omit<StepRecord, "clock"> {
  // A tool total stored as null (it overflowed before sums were capped) is shown capped, so
  // the summary keeps to its schema (numbers).
  if (shown.tools.every((t) => typeof t.calls === "number" && typeof t.duration_ms === "number" && typeof t.errors === "number")) return shown;
  return { ...shown, tools: shown.tools.map((t) => ({ name: t.name, calls: cappedSum(t.calls, 0), duration_ms: cappedSum(t.duration_ms, 0), errors: cappedSum(t.errors, 0) })) };
}

function shownAlpha({ clock: _clock, ...shown }: Alpha): Omit<Alpha, "clock"> {
  return shown;
}
