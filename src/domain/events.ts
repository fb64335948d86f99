import { z } from "zod";

/**
 * The event envelope agents send to `POST /v1/callbacks` and browsers receive over SSE.
 * Each type's `data` has its own schema; unknown fields are kept (`loose`), not refused,
 * so agents can carry extra context through to the stream.
 */
const id = z.string().min(1).max(200);

/**
 * Client-chosen ids that name what routes reach: sessions, topics, alphas. No `:`, because
 * Durable Object names join ids with it (`{team}:{session}:{topic}`) and one name must never
 * stand for two entities; no `/` or spaces, so every id a callback creates has a route.
 * The routes use the same rule (src/lib/ids.ts re-exports it).
 */
export const CLIENT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const clientId = z.string().regex(CLIENT_ID_PATTERN, "1-128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit");
// Step names are validated by the reducer, not here: an unknown step is a rejected event
// recorded on the session (the issue says so), not a 400 for the whole request.
const stepName = z.string().min(1).max(64);
const nonNegInt = z.number().int().nonnegative();
const nonNeg = z.number().nonnegative();

/**
 * Upper bounds for what one event may report. Counts and durations are summed across events
 * (tool usage) or shown as given, and JSON has no Infinity: 1e308 + 1e308 became null on the
 * wire and 0 after a restart. Each bound is far above anything real, so a value past it is a
 * bug or an attack, refused with a field error (400) rather than stored: a count (calls,
 * errors, turns) at most 1e9; a duration at most 1e12 ms (about 31 years); a cost at most
 * $1,000,000 per event. Sums are capped at Number.MAX_SAFE_INTEGER besides (src/domain/topic.ts).
 */
export const MAX_EVENT_COUNT = 1_000_000_000;
export const MAX_EVENT_DURATION_MS = 1_000_000_000_000;
export const MAX_EVENT_COST_USD = 1_000_000;
const count = nonNegInt.max(MAX_EVENT_COUNT);
const durationMs = nonNeg.max(MAX_EVENT_DURATION_MS);
const costUsd = nonNeg.max(MAX_EVENT_COST_USD);

/** The longest tool name a step records. */
export const MAX_TOOL_NAME = 200;

export const toolUsageSchema = z.looseObject({
  name: z.string().min(1).max(MAX_TOOL_NAME),
  calls: count,
  duration_ms: durationMs.default(0),
  errors: count.default(0),
});

export const eventDataSchemas = {
  topic_added: z.looseObject({ topic_id: clientId, hypothesis: z.string().max(10_000).optional() }),
  update_status: z.looseObject({
    status: z.enum(["created", "running", "completed", "failed"]),
    reason: z.string().max(10_000).optional(),
  }),
  insight_started: z.looseObject({ insight_id: id, title: z.string().max(1000).optional() }),
  insight_failed: z.looseObject({ insight_id: id, error: z.string().max(10_000) }),
  step_started: z.looseObject({ step: stepName, max_turns: z.number().int().positive().max(MAX_EVENT_COUNT).optional() }),
  step_completed: z.looseObject({
    step: stepName,
    turns: count,
    cost_usd: costUsd.optional(),
    duration_ms: durationMs.optional(),
  }),
  step_failed: z.looseObject({
    step: stepName,
    error: z.string().max(10_000),
    turns: count.optional(),
    cost_usd: costUsd.optional(),
    duration_ms: durationMs.optional(),
  }),
  "alpha.registered": z.looseObject({
    alpha_id: clientId,
    name: z.string().max(1000).optional(),
    expression: z.string().max(10_000).optional(),
  }),
  "alpha.evaluated": z.looseObject({
    alpha_id: clientId,
    metrics: z.record(z.string(), z.number()),
    passed: z.boolean(),
  }),
  "workspace.sync": z.looseObject({
    files: z.array(z.looseObject({ path: z.string().min(1).max(1024), size: nonNegInt, etag: z.string().optional() })).max(1000),
  }),
  "usage.reported": z.looseObject({
    step: stepName,
    tools: z.array(toolUsageSchema).max(500),
    turns: count.optional(),
    cost_usd: costUsd.optional(),
  }),
} as const;

export type EventType = keyof typeof eventDataSchemas;
export const EVENT_TYPES = Object.keys(eventDataSchemas) as EventType[];
export const SESSION_EVENT_TYPES = ["topic_added", "update_status", "insight_started", "insight_failed"] as const;

export function isSessionLevel(type: EventType): boolean {
  return (SESSION_EVENT_TYPES as readonly string[]).includes(type);
}

/**
 * When an event happened, as ISO 8601 with any offset and precision, kept in one form: UTC
 * with milliseconds (`toISOString`), so `…T12:00:00+02:00` and `…T10:00:00Z` are one instant
 * and `…T10:00:00Z` sorts before `…T10:00:00.500Z`. Reducers still compare instants, not
 * strings (`instant`), since a state or a queued event may hold an older form.
 */
const occurredAt = z.iso.datetime({ offset: true }).transform((value, ctx) => {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    ctx.addIssue({ code: "custom", message: "not a valid point in time" });
    return z.NEVER;
  }
  return new Date(ms).toISOString();
});

/** The instant a timestamp names (ms since the epoch); null or unreadable sorts first. */
export function instant(at: string | null | undefined): number {
  const ms = at ? Date.parse(at) : Number.NaN;
  return Number.isNaN(ms) ? Number.NEGATIVE_INFINITY : ms;
}

/** A timestamp in the canonical form (`toISOString`); unreadable ones are kept as they are. */
export function canonicalTime(at: string): string {
  const ms = Date.parse(at);
  return Number.isNaN(ms) ? at : new Date(ms).toISOString();
}

/**
 * Prefixes of the ids the platform gives the events it makes itself (a topic added through the
 * API, an operator's status, a workspace write). `api:topic_added:<topic>` is the same for
 * every retry of the request, so an agent's event must not be able to take it first and
 * silence the announcement: agents' event ids may not start with these.
 */
export const PLATFORM_EVENT_ID_PREFIXES = ["api:", "operator:", "workspace:"] as const;

/**
 * The platform's announcement that a topic was added, on the session stream: made when the API
 * creates a topic, and when a topic is created by its first event (an agent's own
 * `topic_added` may never come). One id per topic, so it is applied once however it came.
 */
export function platformTopicAdded(sessionId: string, topicId: string, occurredAt: string, hypothesis?: string | null): AgentEvent {
  return { id: `api:topic_added:${topicId}`, type: "topic_added", session_id: sessionId, occurred_at: occurredAt, data: { topic_id: topicId, ...(hypothesis ? { hypothesis } : {}) } };
}

const agentEventId = id.refine((v) => !PLATFORM_EVENT_ID_PREFIXES.some((p) => v.startsWith(p)), {
  message: `ids starting with ${PLATFORM_EVENT_ID_PREFIXES.join(", ")} are the platform's own`,
});

const envelopeBase = z.object({
  id: agentEventId.describe("client-chosen, unique per team; the idempotency key (not starting with api:, operator: or workspace:)"),
  type: z.enum(EVENT_TYPES as [EventType, ...EventType[]]),
  session_id: clientId,
  topic_id: clientId.optional(),
  occurred_at: occurredAt.optional(),
  data: z.record(z.string(), z.unknown()),
});

/** One event as validated at the edge: envelope plus the type's own `data` schema. */
export const eventSchema = envelopeBase.superRefine((event, ctx) => {
  const parsed = eventDataSchemas[event.type].safeParse(event.data);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      ctx.addIssue({ code: "custom", message: issue.message, path: ["data", ...issue.path] });
    }
  }
  if (!isSessionLevel(event.type) && !event.topic_id) {
    ctx.addIssue({ code: "custom", message: `${event.type} is a topic-level event and needs topic_id`, path: ["topic_id"] });
  }
});

/**
 * An event as the platform handles it. `accepted_at` and `accepted_index` are set by the
 * platform when it accepts the event (never by a client: the schema drops them), see
 * `stampAccepted`.
 */
export type AgentEvent = z.infer<typeof envelopeBase> & { accepted_at?: string; accepted_index?: number };

/** What is stored in a hub's log and sent over SSE: the event as received, plus when it was applied. */
export interface LoggedEvent extends AgentEvent {
  received_at: string;
}

/** `POST /v1/callbacks` takes one event or `{events: [...]}` with at most 100. */
/**
 * A batch names each event once: two with one id would be applied as one (the id is the
 * idempotency key) while the answer counted both, so a repeated id is refused, naming both.
 */
export const callbackBatchSchema = z.object({
  events: z
    .array(eventSchema)
    .min(1)
    .max(100)
    .superRefine((events, ctx) => {
      const first = new Map<string, number>();
      events.forEach((event, i) => {
        const earlier = first.get(event.id);
        if (earlier === undefined) first.set(event.id, i);
        else ctx.addIssue({ code: "custom", message: `the id ${JSON.stringify(event.id)} is already events.${earlier}'s: each event in a request needs its own id`, path: [i, "id"] });
      });
    }),
});
export const callbackBodySchema = z.union([callbackBatchSchema, eventSchema]);

/**
 * Picks the schema by shape before validating, so a bad event inside a batch gets a field
 * error at `events.N…` rather than zod's opaque "no union member matched".
 */
export function parseCallbackBody(body: unknown) {
  const isBatch = typeof body === "object" && body !== null && "events" in body;
  const result = isBatch ? callbackBatchSchema.safeParse(body) : eventSchema.safeParse(body);
  if (!result.success) return { success: false as const, error: result.error };
  const events: AgentEvent[] = "events" in result.data ? result.data.events : [result.data];
  return { success: true as const, events };
}

/**
 * Marks each event with the time the platform accepted it (its request, or its sentinel's
 * upload). Queues keep no order between requests: an event without `occurred_at` is ordered
 * by this time instead of by when a hub happened to apply it, so the reducers order it
 * against other requests' events whatever order they arrive in. The events of one request
 * share the instant and keep the order given: the hub applies them in that order, and
 * `accepted_index` (the position in the request) lets the reducers tell, at one instant,
 * which came later (`acceptanceOrder`).
 */
export function stampAccepted(events: AgentEvent[], acceptedAt: Date): AgentEvent[] {
  const accepted_at = acceptedAt.toISOString();
  return events.map((event, accepted_index) => ({ ...event, accepted_at, accepted_index }));
}

/**
 * An event's place in the order the platform accepted events: its request's instant, then its
 * position in the request, as one string that sorts that way (toISOString has one fixed width,
 * the position is zero-padded). Undefined for an event stamped before positions were.
 */
export function acceptanceOrder(event: AgentEvent): string | undefined {
  if (event.accepted_at === undefined || event.accepted_index === undefined) return undefined;
  return `${event.accepted_at}#${String(event.accepted_index).padStart(4, "0")}`;
}

/** When an event is taken to have occurred: as its sender said, else as the platform accepted it, else `now` (applied). */
export function eventTime(event: AgentEvent, now: string): string {
  const at = event.occurred_at ?? event.accepted_at;
  return at ? canonicalTime(at) : now;
}

/**
 * The value a client-chosen key names in a record, or undefined: own properties only, so
 * "constructor", "__proto__" or "toString" name nothing rather than Object.prototype's members.
 */
export function ownEntry<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/**
 * Why an event's data does not meet its schema (now), or null when it does: the edge
 * validated it, but a message queued before a rule was tightened may not pass it any more.
 * Reducers refuse such an event (recorded as rejected) rather than throw, since a throw
 * would fail every other request's events applied with it, on every redelivery.
 */
export function invalidData(error: unknown): string | null {
  if (!(error instanceof z.ZodError)) return null;
  return `invalid data: ${error.issues.map((i) => `${["data", ...i.path].join(".")}: ${i.message}`).join("; ")}`;
}

/** Typed view of an event's data, for reducers (the edge already validated it). */
export function dataOf<T extends EventType>(event: AgentEvent & { type: T }): z.infer<(typeof eventDataSchemas)[T]> {
  return eventDataSchemas[event.type].parse(event.data) as z.infer<(typeof eventDataSchemas)[T]>;
}
