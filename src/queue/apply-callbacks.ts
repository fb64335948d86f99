import type { SessionSummary } from "../../durable-objects/session-hub";
import type { ApplyReport } from "../../durable-objects/hub";
import type { BatchItem } from "drizzle-orm/batch";
import { dbOf } from "../db/client";
import { upsertAlphaRows, upsertSessionRow, upsertTopicRow } from "../db/index-rows";
import { type AgentEvent, eventDataSchemas, isSessionLevel, platformTopicAdded } from "../domain/events";
import type { TopicSummary } from "../domain/topic";
import { sessionHub, topicHub } from "../lib/hubs";
import type { CallbackMessage } from "./messages";

/** The events one hub gets from a batch, and the requests (by index) they came from. */
interface HubGroup {
  team: string;
  session: string;
  topic?: string;
  events: AgentEvent[];
  /** The request (by index) each event came from. */
  origins: number[];
  from: Set<number>;
}

/** One index row (a topic's with its alphas) to write, and the requests (by index) it came from. */
type IndexWrite = (
  | { kind: "session"; team: string; summary: SessionSummary; version: number }
  // `alphas`: the ids of the alphas whose rows to write (those the events named), not the
  // topic's every alpha: a topic of 1,000 alphas would otherwise rewrite 1,000 rows per step event.
  | { kind: "topic"; team: string; session: string; summary: TopicSummary; version: number; alphas: Set<string> }
) & { from: Set<number> };

/** A topic's alpha rows are all written again each time its version passes a multiple of this. */
export const ALPHA_REFRESH = 64;

/** How many index writes go to D1 at once when a failed batch is retried row by row. */
const INDEX_RETRY_CONCURRENCY = 6;

/**
 * Applies a batch of callback requests with one call per hub and one D1 batch for the index
 * (when it creates topics, their rows go first, in one batch per kind: by topic_added, by
 * a first topic event, so that each is indexed before it is announced).
 *
 * Each hub gets the events of every request that names it, concatenated in batch order, so
 * the events of one request stay in the order given (the guarantee callers have). Under load
 * this turns N requests for one topic into one apply, one SSE write per subscriber and one
 * index write, instead of N of each. Session events go first, then topics, as for a single
 * request. Returns the requests that failed (by index): a hub or one of their index rows
 * failed for them (a row that cannot be written fails only the requests that touched it, not
 * the whole batch), and redelivering them is safe because hubs apply each event id once and
 * index rows are versioned upserts.
 */
export async function applyCallbackRequests(env: Env, requests: CallbackMessage[]): Promise<{ failed: Set<number>; errors: unknown[] }> {
  const failed = new Set<number>();
  const errors: unknown[] = [];
  const fail = (from: Iterable<number>, error: unknown) => {
    for (const i of from) failed.add(i);
    errors.push(error);
  };

  const loaded = await Promise.all(
    requests.map(async (m, i) => {
      try {
        return "events" in m ? m.events : await loadOversized(env, m.r2_key);
      } catch (error) {
        fail([i], error);
        return [];
      }
    }),
  );

  const sessions = new Map<string, HubGroup>();
  const topics = new Map<string, HubGroup>();
  loaded.forEach((events, i) => {
    const team = (requests[i] as CallbackMessage).team_id;
    for (const event of events) {
      const level = isSessionLevel(event.type);
      const key = level ? `${team}\u0000${event.session_id}` : `${team}\u0000${event.session_id}\u0000${event.topic_id}`;
      const groups = level ? sessions : topics;
      const group = groups.get(key) ?? { team, session: event.session_id, topic: level ? undefined : (event.topic_id as string), events: [], origins: [], from: new Set<number>() };
      group.events.push(event);
      group.origins.push(i);
      group.from.add(i);
      groups.set(key, group);
    }
  });

  const writes: IndexWrite[] = [];
  // A topic is announced (topic_added logged by its session's hub) only once its index row is
  // written: a session stream's snapshot, read from the index after it took its sequence
  // number, then lists every topic announced up to that number. Announced first, a watcher
  // connecting before the row was written (for a whole retry backoff if the write failed)
  // would get a snapshot past the topic_added that lacks the topic, and never hear of it.

  // topic_added creates the topic first: its hub, then its index row (one D1 batch for all).
  const created: IndexWrite[] = [];
  const topicsOf = new Map<HubGroup, Map<string, { hypothesis: string | null; created_at: string }>>();
  await Promise.all(
    [...sessions.values()].map(async (g) => {
      try {
        const known = new Map<string, { hypothesis: string | null; created_at: string }>();
        for (const event of g.events) {
          if (event.type !== "topic_added") continue;
          const parsed = eventDataSchemas.topic_added.safeParse(event.data);
          // Refused by the session's hub (so it creates nothing): data applied before its id
          // rule was tightened (a duplicate now; no route reaches it).
          if (!parsed.success) continue;
          const data = parsed.data;
          const topic = await topicHub(env, g.team, g.session, data.topic_id).ensure({ id: data.topic_id, session_id: g.session, team_id: g.team, hypothesis: data.hypothesis ?? null });
          known.set(data.topic_id, { hypothesis: topic.summary.hypothesis, created_at: topic.summary.created_at });
          created.push({ kind: "topic", team: g.team, session: g.session, summary: topic.summary, version: topic.version, alphas: new Set(), from: g.from });
        }
        topicsOf.set(g, known);
      } catch (error) {
        fail(g.from, error);
      }
    }),
  );
  if (created.length > 0) await writeIndex(env, created, fail);

  await Promise.all(
    [...sessions.values()].map(async (g) => {
      const known = topicsOf.get(g);
      if (!known) return;
      // A request that failed (a topic's row not written) is redelivered whole: none of its
      // session events are applied now, so its topic_added is not announced before its row.
      const events: AgentEvent[] = [];
      g.events.forEach((event, k) => {
        if (failed.has(g.origins[k] as number)) return;
        events.push(event);
        const data = event.type === "topic_added" ? eventDataSchemas.topic_added.safeParse(event.data).data : undefined;
        const topic = data ? known.get(data.topic_id) : undefined;
        // The topic has another hypothesis than this event's (it had one already, or this event
        // gives none): the session's hub does not announce it with this one; the platform's
        // announcement, with the topic's, follows in case the topic was never announced (its
        // id is applied once, and a topic already announced is not announced again).
        if (data && topic && topic.hypothesis !== (data.hypothesis ?? null)) events.push(platformTopicAdded(g.session, data.topic_id, topic.created_at, topic.hypothesis));
      });
      if (events.length === 0) return;
      try {
        const hypotheses = new Map([...known].map(([id, t]) => [id, t.hypothesis]));
        const report = await sessionHub(env, g.team, g.session).apply(events, hypotheses);
        writes.push({ kind: "session", team: g.team, summary: report.summary, version: report.version, from: g.from });
      } catch (error) {
        fail(g.from, error);
      }
    }),
  );

  const announce: { g: HubGroup; write: IndexWrite & { kind: "topic" } }[] = [];
  await Promise.all(
    [...topics.values()].map(async (g) => {
      try {
        const init = { id: g.topic as string, session_id: g.session, team_id: g.team };
        const report: ApplyReport<TopicSummary> & { created: boolean; exists: boolean } = await topicHub(env, g.team, g.session, g.topic as string).apply(init, g.events);
        // Duplicates too: a redelivery after a failed index write must write their alphas again.
        // And every ALPHA_REFRESH changes of the topic, all of them: a row whose write failed
        // for good (its message dead-lettered) is written again from the hub's state.
        const refresh = Math.floor(report.version / ALPHA_REFRESH) !== Math.floor(Math.max(0, report.version - g.events.length) / ALPHA_REFRESH);
        const named = refresh ? new Set(report.summary.alphas.map((a) => a.id)) : alphaIdsOf(g.events);
        // Every event refused by a topic that did not exist: it still does not, so no index row.
        if (report.exists) {
          const write = { kind: "topic" as const, team: g.team, session: g.session, summary: report.summary, version: report.version, alphas: named, from: g.from };
          // Created by its first event: announced on the session stream as the API announces
          // one, once its row is written. A redelivery (its events duplicates) announces it
          // too: the first delivery may have failed between creating and announcing it (the
          // session's hub applies the announcement's id once, so nothing is announced twice).
          if (report.created || report.results.some((r) => r.status === "duplicate")) announce.push({ g, write });
          else writes.push(write);
        }
        const byId = new Map(g.events.map((e) => [e.id, e.type]));
        const rejected = report.results.flatMap((r) => (r.status === "rejected" ? [{ event_id: r.event_id, type: byId.get(r.event_id) ?? "unknown", reason: r.reason }] : []));
        if (rejected.length > 0) await sessionHub(env, g.team, g.session).recordRejected(rejected);
      } catch (error) {
        fail(g.from, error);
      }
    }),
  );
  if (announce.length > 0) {
    const unwritten = await writeIndex(env, announce.map((a) => a.write), fail);
    await Promise.all(
      announce.map(async ({ g, write }) => {
        // Its row was not written: not announced now; the redelivery (its events duplicates) does.
        if (unwritten.has(rowKey(write))) return;
        try {
          const t = write.summary;
          await sessionHub(env, g.team, g.session).apply([platformTopicAdded(g.session, t.id, t.created_at, t.hypothesis)], new Map([[t.id, t.hypothesis]]));
        } catch (error) {
          fail(g.from, error);
        }
      }),
    );
  }

  if (writes.length > 0) await writeIndex(env, writes, fail);

  // An oversized request's R2 copy goes once it was applied (a redelivery finds it gone: done).
  await Promise.all(
    requests.map(async (m, i) => {
      if (!("r2_key" in m) || failed.has(i)) return;
      try {
        await env.BUCKET.delete(m.r2_key);
      } catch (error) {
        fail([i], error);
      }
    }),
  );
  return { failed, errors };
}

/** Applies one request; throws when any part of it failed (the caller retries it). */
export async function applyCallbackMessage(env: Env, message: CallbackMessage): Promise<void> {
  const { errors } = await applyCallbackRequests(env, [message]);
  if (errors.length > 0) throw errors[0];
}

/**
 * Every index row the batch changed, in one D1 batch (one round trip). D1 runs a batch as one
 * transaction, so one row that cannot be written (a constraint it breaks) would undo every
 * other team's rows with it: then each row (a session's, or a topic's with its alphas) is
 * written again on its own, and only the requests whose rows still fail are failed.
 * Returns the rows (by rowKey) that were not written.
 */
async function writeIndex(env: Env, writes: IndexWrite[], fail: (from: Iterable<number>, error: unknown) => void): Promise<Set<string>> {
  const db = dbOf(env);
  // Only the newest version of each row matters (older ones would be skipped by the upsert
  // anyway); it carries every request that changed the row, since it includes their changes.
  const newest = new Map<string, IndexWrite>();
  for (const w of writes) {
    const key = rowKey(w);
    const prior = newest.get(key);
    const from = new Set([...(prior?.from ?? []), ...w.from]);
    const chosen = !prior || prior.version < w.version ? w : prior;
    // The newest summary holds every alpha the older writes named: write all of them from it.
    const alphas = chosen.kind === "topic" ? new Set([...(prior?.kind === "topic" ? prior.alphas : []), ...(w.kind === "topic" ? w.alphas : [])]) : null;
    newest.set(key, chosen.kind === "topic" && alphas ? { ...chosen, alphas, from } : { ...chosen, from });
  }
  const unwritten = new Set<string>();
  const units = [...newest].map(([key, w]): { key: string; from: Set<number>; statements: BatchItem<"sqlite">[] } => ({
    key,
    from: w.from,
    statements: w.kind === "session" ? [upsertSessionRow(db, w.team, w.summary, w.version)] : [upsertTopicRow(db, w.team, w.session, w.summary, w.version), ...upsertAlphaRows(db, w.team, w.session, w.summary, w.version, w.alphas)],
  }));
  const run = async (statements: BatchItem<"sqlite">[]) => {
    const [first, ...rest] = statements;
    if (first) await db.batch([first, ...rest]);
  };
  try {
    await run(units.flatMap((u) => u.statements));
    return unwritten;
  } catch (error) {
    if (units.length === 1) {
      const unit = units[0] as (typeof units)[number];
      fail(unit.from, error);
      unwritten.add(unit.key);
      return unwritten;
    }
  }
  let next = 0;
  const worker = async () => {
    while (next < units.length) {
      const unit = units[next++] as (typeof units)[number];
      try {
        await run(unit.statements);
      } catch (error) {
        fail(unit.from, error);
        unwritten.add(unit.key);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(INDEX_RETRY_CONCURRENCY, units.length) }, worker));
  return unwritten;
}

/** Which index row a write is for (writes of one row are merged into its newest). */
function rowKey(w: IndexWrite): string {
  return w.kind === "session" ? `s\u0000${w.team}\u0000${w.summary.id}` : `t\u0000${w.team}\u0000${w.session}\u0000${w.summary.id}`;
}

/** The alphas a topic's events name. */
function alphaIdsOf(events: AgentEvent[]): Set<string> {
  const ids = new Set<string>();
  for (const e of events) {
    if (e.type !== "alpha.registered" && e.type !== "alpha.evaluated") continue;
    const id = (e.data as { alpha_id?: unknown } | undefined)?.alpha_id;
    if (typeof id === "string") ids.add(id);
  }
  return ids;
}

async function loadOversized(env: Env, key: string): Promise<AgentEvent[]> {
  const object = await env.BUCKET.get(key);
  // Already applied and deleted by an earlier delivery of this message: nothing left to do.
  if (!object) return [];
  return (await object.json()) as AgentEvent[];
}
