import { type AgentEvent, canonicalTime, dataOf, instant, invalidData, ownEntry } from "./events";
import { DEFAULT_MAX_TURNS, STEPS, type Step, isStep } from "./steps";

export type StepStatus = "pending" | "running" | "completed" | "failed";

export interface ToolUsage {
  name: string;
  calls: number;
  duration_ms: number;
  errors: number;
}

export interface StepRecord {
  status: StepStatus;
  turns: number;
  max_turns: number;
  cost_usd: number;
  duration_ms: number | null;
  tools: ToolUsage[];
  started_at: string | null;
  ended_at: string | null;
  error: string | null;
}

export interface Alpha {
  id: string;
  name: string | null;
  expression: string | null;
  metrics: Record<string, number> | null;
  passed: boolean | null;
  registered_at: string | null;
  evaluated_at: string | null;
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
  last_workspace_sync: { at: string; files: number } | null;
}

export type TopicOutcome = { accepted: true; state: TopicState } | { accepted: false; state: TopicState; reason: string };

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
  try {
    return applyTopicEventData(state, event, now);
  } catch (error) {
    const reason = invalidData(error);
    if (reason === null) throw error;
    return { accepted: false, state, reason };
  }
}

function applyTopicEventData(state: TopicState, event: AgentEvent, now: string): TopicOutcome {
  // One canonical form, compared as instants: a queued event or a stored state may hold
  // another form of the same time (an offset, fewer fraction digits).
  const at = event.occurred_at ? canonicalTime(event.occurred_at) : now;
  const withStep = (step: Step, record: StepRecord): TopicOutcome => ({
    accepted: true,
    state: { ...state, updated_at: now, steps: { ...state.steps, [step]: record } },
  });
  switch (event.type) {
    case "step_started": {
      const data = dataOf({ ...event, type: "step_started" });
      if (!isStep(data.step)) return unknownStep(state, data.step);
      const r = state.steps[data.step];
      const max_turns = data.max_turns ?? r.max_turns;
      if (r.status === "pending" || (r.status === "failed" && r.ended_at !== null && later(at, r.ended_at))) {
        return withStep(data.step, { ...r, status: "running", max_turns, started_at: at, ended_at: null, error: null });
      }
      // Running already, completed, or a failure newer than this start: keep the record, note the budget.
      return withStep(data.step, { ...r, max_turns, started_at: r.started_at ?? at });
    }
    case "step_completed": {
      const data = dataOf({ ...event, type: "step_completed" });
      if (!isStep(data.step)) return unknownStep(state, data.step);
      const r = state.steps[data.step];
      if (isEnded(r) && r.ended_at !== null && later(r.ended_at, at)) return { accepted: true, state };
      return withStep(data.step, {
        ...r,
        status: "completed",
        turns: data.turns,
        cost_usd: data.cost_usd ?? r.cost_usd,
        duration_ms: data.duration_ms ?? r.duration_ms,
        started_at: r.started_at,
        ended_at: at,
        error: null,
      });
    }
    case "step_failed": {
      const data = dataOf({ ...event, type: "step_failed" });
      if (!isStep(data.step)) return unknownStep(state, data.step);
      const r = state.steps[data.step];
      if (isEnded(r) && r.ended_at !== null && later(r.ended_at, at)) return { accepted: true, state };
      // A start recorded after this failure means the step was re-run: the failure is history.
      if (r.status === "running" && r.started_at !== null && later(r.started_at, at)) return { accepted: true, state };
      return withStep(data.step, {
        ...r,
        status: "failed",
        turns: data.turns ?? r.turns,
        duration_ms: data.duration_ms ?? r.duration_ms,
        ended_at: at,
        error: data.error,
      });
    }
    case "usage.reported": {
      const data = dataOf({ ...event, type: "usage.reported" });
      if (!isStep(data.step)) return unknownStep(state, data.step);
      const r = state.steps[data.step];
      return withStep(data.step, {
        ...r,
        tools: mergeTools(r.tools, data.tools),
        // Usage reports are cumulative snapshots: never let an older one lower the figures.
        turns: Math.max(r.turns, data.turns ?? 0),
        cost_usd: Math.max(r.cost_usd, data.cost_usd ?? 0),
      });
    }
    case "alpha.registered": {
      const data = dataOf({ ...event, type: "alpha.registered" });
      const prior = ownEntry(state.alphas, data.alpha_id) ?? emptyAlpha(data.alpha_id);
      const alpha: Alpha = { ...prior, name: data.name ?? prior.name, expression: data.expression ?? prior.expression, registered_at: prior.registered_at ?? at };
      return { accepted: true, state: { ...state, updated_at: now, alphas: { ...state.alphas, [alpha.id]: alpha } } };
    }
    case "alpha.evaluated": {
      const data = dataOf({ ...event, type: "alpha.evaluated" });
      const prior = ownEntry(state.alphas, data.alpha_id) ?? emptyAlpha(data.alpha_id);
      if (prior.evaluated_at !== null && later(prior.evaluated_at, at)) return { accepted: true, state };
      const alpha: Alpha = { ...prior, metrics: data.metrics, passed: data.passed, evaluated_at: at };
      return { accepted: true, state: { ...state, updated_at: now, alphas: { ...state.alphas, [alpha.id]: alpha } } };
    }
    case "workspace.sync": {
      const data = dataOf({ ...event, type: "workspace.sync" });
      return { accepted: true, state: { ...state, updated_at: now, last_workspace_sync: { at, files: data.files.length } } };
    }
    default:
      return { accepted: false, state, reason: `${event.type} is not a topic-level event` };
  }
}

/** Whether `a` is a later instant than `b`. */
function later(a: string, b: string): boolean {
  return instant(a) > instant(b);
}

function isEnded(r: StepRecord): boolean {
  return r.status === "completed" || r.status === "failed";
}

function unknownStep(state: TopicState, step: string): TopicOutcome {
  return { accepted: false, state, reason: `unknown step "${step}"; steps are ${STEPS.join(", ")}` };
}

function emptyAlpha(id: string): Alpha {
  return { id, name: null, expression: null, metrics: null, passed: null, registered_at: null, evaluated_at: null };
}

/** Sums tool usage by name; each `usage.reported` event is applied once (idempotent by id). */
export function mergeTools(current: ToolUsage[], added: Array<{ name: string; calls: number; duration_ms: number; errors: number }>): ToolUsage[] {
  const byName = new Map(current.map((t) => [t.name, { ...t }]));
  for (const t of added) {
    const prior = byName.get(t.name) ?? { name: t.name, calls: 0, duration_ms: 0, errors: 0 };
    byName.set(t.name, { name: t.name, calls: prior.calls + t.calls, duration_ms: prior.duration_ms + t.duration_ms, errors: prior.errors + t.errors });
  }
  return [...byName.values()];
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
    steps: state.steps,
    // Own entries with an id only: a topic stored before alpha ids were looked up as own
    // properties may hold an id-less entry (an alpha named "constructor" did), which no
    // index row could be written for.
    alphas: Object.entries(state.alphas).flatMap(([key, a]) => (typeof a?.id === "string" && a.id === key ? [a] : [])),
  };
}
export type TopicSummary = ReturnType<typeof topicSummary>;
