// The two measured scenarios: A, callbacks accepted per second; B, callback-to-SSE delivery
// latency at a fixed rate with N subscribers on one topic.
import { monitorEventLoopDelay } from "node:perf_hooks";
import { agent, expectJson, request } from "./http.mjs";
import { nowMs } from "./sse-client.mjs";
import { summarize } from "./stats.mjs";
import { openSubscribers } from "./subscribers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One `usage.reported` callback body; `extra` goes into data (fields beyond the schema are kept). */
export function usageEvent({ id, sid, tid, extra = {} }) {
  return JSON.stringify({
    id,
    type: "usage.reported",
    session_id: sid,
    topic_id: tid,
    occurred_at: new Date().toISOString(),
    data: { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 5, errors: 0 }], ...extra },
  });
}

/** bash calls summed by the topic's explore step: one per applied event of these scenarios. */
export async function appliedCount(base, key, sid, tid) {
  const topic = await expectJson(base, "GET", `/v1/sessions/${sid}/topics/${tid}`, 200, { token: key });
  return topic.steps?.explore?.tools?.find((t) => t.name === "bash")?.calls ?? 0;
}

/**
 * Scenario A: `concurrency` loops POST one callback each, back to back, for durationMs.
 * Then waits (at most drainTimeoutMs) for the queue consumer to apply every accepted one.
 */
export async function throughput({ base, key, sid, tid, prefix, concurrency = 32, durationMs = 10_000, drainTimeoutMs = 90_000, log, phase = () => {} }) {
  const via = agent(concurrency);
  const statuses = {};
  const latencies = [];
  let next = 0;
  let accepted = 0;
  let errors = 0;
  const firstError = [];
  phase("A: posting");
  const t0 = performance.now();
  const end = t0 + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      // Bounded by time, and by count as a safety net.
      while (performance.now() < end && next < 10_000_000) {
        const body = usageEvent({ id: `${prefix}${next++}`, sid, tid });
        const s = performance.now();
        try {
          const res = await request(base, "POST", "/v1/callbacks", { token: key, body, agent: via, timeoutMs: 15_000 });
          latencies.push(performance.now() - s);
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status === 202) accepted++;
          else if (firstError.length < 3) firstError.push(`${res.status} ${res.text.slice(0, 200)}`);
        } catch (e) {
          errors++;
          if (firstError.length < 3) firstError.push(e.message);
        }
      }
    }),
  );
  const postMs = performance.now() - t0;
  via.destroy();
  log(`  posted ${next} in ${(postMs / 1000).toFixed(1)} s: ${accepted} accepted (${Math.round(accepted / (postMs / 1000))}/s), statuses ${JSON.stringify(statuses)}, errors ${errors}`);

  // Drain: the consumer applies what the queue holds; poll the topic's counter.
  phase("A: queue drain");
  let applied = 0;
  const drainEnd = performance.now() + drainTimeoutMs;
  while (performance.now() < drainEnd) {
    try {
      applied = await appliedCount(base, key, sid, tid);
    } catch {}
    if (applied >= accepted) break;
    await sleep(250);
  }
  const drainedMs = performance.now() - t0;
  const drained = applied >= accepted;
  log(`  applied ${applied}/${accepted} ${drained ? `after ${(drainedMs / 1000).toFixed(1)} s from the first post` : `when the drain wait (${drainTimeoutMs / 1000} s) ran out`}`);
  return {
    concurrency,
    duration_ms: Math.round(postMs),
    sent: next,
    accepted,
    accepted_per_s: Math.round((accepted / (postMs / 1000)) * 10) / 10,
    statuses,
    network_errors: errors,
    first_errors: firstError,
    request_latency_ms: summarize(latencies),
    drain: { applied, drained, ms_from_first_post: Math.round(drainedMs), applied_per_s: Math.round((applied / (drainedMs / 1000)) * 10) / 10 },
  };
}

/**
 * Scenario B: `subscribers` streams on one topic; callbacks posted at ratePerS for durationMs,
 * each carrying data.sent_at_ms (taken just before the request) and data.bench_i. Every
 * subscriber records receive time minus sent time for each event. `streamBase` is where the
 * streams are served when that is not `base` (the peer's SSE server is its own process).
 */
export async function latency({ base, streamBase = base, key, sid, tid, prefix, subscribers, threads, ratePerS = 200, durationMs = 15_000, collectWaitMs = 30_000, drainTimeoutMs = 0, log, phase = () => {} }) {
  const total = Math.round((ratePerS * durationMs) / 1000);
  const url = `${streamBase}/v1/sessions/${sid}/topics/${tid}/stream`;
  phase(`B ${subscribers}: opening streams`);
  const pool = await openSubscribers({ url, token: key, count: subscribers, threads, eventPrefix: prefix, maxEvents: total });
  try {
    log(`  ${pool.ready.open}/${subscribers} streams open with a snapshot in ${(pool.ready.open_ms / 1000).toFixed(1)} s${pool.ready.failed ? `; failed: ${pool.ready.failures.join("; ")}` : ""}`);

    const via = agent(64);
    const accepted = new Uint8Array(total);
    const answerMs = [];
    const statuses = {};
    let errors = 0;
    const firstError = [];
    const inflight = new Set();
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    phase(`B ${subscribers}: posting at ${ratePerS}/s`);
    const start = performance.now();
    const startEpoch = nowMs();
    let behindMax = 0;
    for (let i = 0; i < total; i++) {
      const target = start + (i * 1000) / ratePerS;
      const wait = target - performance.now();
      if (wait > 1) await sleep(wait);
      behindMax = Math.max(behindMax, performance.now() - target);
      while (inflight.size >= 512) await Promise.race(inflight);
      const body = usageEvent({ id: `${prefix}${i}`, sid, tid, extra: { bench_i: i, sent_at_ms: nowMs() } });
      const postedAt = performance.now();
      const p = request(base, "POST", "/v1/callbacks", { token: key, body, agent: via, timeoutMs: 15_000 })
        .then((res) => {
          answerMs.push(performance.now() - postedAt);
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status === 202) accepted[i] = 1;
          else if (firstError.length < 3) firstError.push(`${res.status} ${res.text.slice(0, 200)}`);
        })
        .catch((e) => {
          errors++;
          if (firstError.length < 3) firstError.push(e.message);
        })
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    const sendMs = performance.now() - start;
    await Promise.all(inflight);
    loop.disable();
    via.destroy();
    const acceptedCount = accepted.reduce((n, x) => n + x, 0);
    const appliedAfterPosting = await appliedCount(base, key, sid, tid).catch(() => null);
    log(`  posted ${total} in ${(sendMs / 1000).toFixed(1)} s (${Math.round(total / (sendMs / 1000))}/s), ${acceptedCount} accepted, statuses ${JSON.stringify(statuses)}, errors ${errors}; ${appliedAfterPosting} applied by the TopicHub so far`);

    phase(`B ${subscribers}: waiting for deliveries`);
    const collectStart = performance.now();
    const got = await pool.collect(accepted, collectWaitMs);
    const collectMs = performance.now() - collectStart;
    const appliedAfterWait = await appliedCount(base, key, sid, tid).catch(() => null);
    const lost = got.subs.reduce((n, s) => n + s.lost, 0);
    const complete = got.subs.filter((s) => s.snapshot && s.lost === 0).length;
    const ended = got.subs.filter((s) => s.ended !== null);
    const beforeApply = got.latencies.map((x, k) => x - got.fanout[k]);
    const lat = summarize(got.latencies);
    log(`  deliveries ${lat.count}: p50 ${lat.p50} ms, p99 ${lat.p99} ms, max ${lat.max} ms; lost ${lost}; ${complete}/${subscribers} subscribers got every event; ${appliedAfterWait} applied by the TopicHub`);
    await pool.terminate();
    let drain = null;
    if (drainTimeoutMs > 0) {
      // Let the queue empty before the next scenario, so its backlog does not load the next.
      phase(`B ${subscribers}: queue drain`);
      const d0 = performance.now();
      let applied = appliedAfterWait ?? 0;
      while (applied < acceptedCount && performance.now() - d0 < drainTimeoutMs) {
        await sleep(250);
        applied = await appliedCount(base, key, sid, tid).catch(() => applied);
      }
      drain = { applied, drained: applied >= acceptedCount, ms: Math.round(performance.now() - d0) };
      log(`  queue drain: ${applied}/${acceptedCount} applied ${drain.drained ? `after ${(drain.ms / 1000).toFixed(1)} s more` : `when the drain wait ran out (${drainTimeoutMs / 1000} s)`}`);
    }
    return {
      subscribers,
      subscriber_threads: threads,
      streams_open: pool.ready.open,
      streams_failed_to_open: pool.ready.failed,
      open_failures: pool.ready.failures,
      open_ms: Math.round(pool.ready.open_ms),
      rate_target_per_s: ratePerS,
      rate_achieved_per_s: Math.round((total / (sendMs / 1000)) * 10) / 10,
      sender_max_behind_schedule_ms: Math.round(behindMax),
      collect_wait_ms: collectWaitMs,
      collect_waited_ms: Math.round(collectMs),
      applied_by_topic_hub: { after_posting: appliedAfterPosting, after_wait: appliedAfterWait, drain_before_next: drain },
      sent: total,
      accepted: acceptedCount,
      statuses,
      network_errors: errors,
      first_errors: firstError,
      expected_deliveries: acceptedCount * subscribers,
      delivered: lat.count,
      lost,
      subscribers_with_every_event: complete,
      every_subscriber_got_every_event: complete === subscribers && lost === 0,
      duplicates: got.subs.reduce((n, s) => n + s.duplicates, 0),
      streams_ended_early: ended.length,
      stream_end_reasons: [...new Set(ended.map((s) => s.ended))].slice(0, 5),
      // When streams ended, in seconds after the first paced callback (negative: before it).
      stream_ends_s_after_first_post: ended.length ? summarize(ended.map((s) => (s.ended_at_ms - startEpoch) / 1000)) : null,
      received_before_end: ended.length ? summarize(ended.map((s) => s.received)) : null,
      latency_ms: lat,
      // The same deliveries split at the TopicHub's apply time (envelope.received_at, workerd's clock).
      sent_to_applied_ms: summarize(beforeApply),
      // POST sent → its answer (the 202 once the queue took it): the part of sent → applied before the queue.
      post_answer_ms: summarize(answerMs),
      applied_to_delivered_ms: summarize(got.fanout),
      client_event_loop_delay_ms: {
        sender: { p99: Math.round((loop.percentile(99) / 1e6) * 10) / 10, max: Math.round((loop.max / 1e6) * 10) / 10 },
        subscriber_threads: got.loops.map((l) => ({ p99: Math.round(l.p99_ms * 10) / 10, max: Math.round(l.max_ms * 10) / 10 })),
      },
    };
  } finally {
    await pool.terminate();
  }
}
