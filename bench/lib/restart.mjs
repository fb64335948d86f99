// Scenario R, the restart test: subscribers that reconnect with Last-Event-ID, callbacks
// paced at a fixed rate by senders that retry like a real agent client, and the system
// restarted the way its production restarts (system.restart(), bench/lib/systems.mjs) while
// both run. Then: what each subscriber missed, what nobody received, what the system itself
// no longer has. `mode` picks one of the system's restart modes (Switchboard has two:
// "redeploy" and "reload"); teamId, sid and tid tell it which hubs the run uses.
import { agent, request } from "./http.mjs";
import { nowMs } from "./sse-client.mjs";
import { appliedCount, usageEvent } from "./scenarios.mjs";
import { summarize } from "./stats.mjs";
import { openSubscribers } from "./subscribers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Worth sending again: the request may not have reached a live server (or it said so). */
const retryable = (status) => status === 408 || status === 429 || status >= 500;

export async function restartTest({ system, mode = null, teamId, base, streamBase = base, key, sid, tid, prefix, subscribers = 100, threads = 1, ratePerS = 200, durationMs = 30_000, restartAtMs = 10_000, collectWaitMs = 30_000, drainTimeoutMs = 60_000, giveUpMs = 120_000, log, phase = () => {} }) {
  const total = Math.round((ratePerS * durationMs) / 1000);
  const url = `${streamBase}/v1/sessions/${sid}/topics/${tid}/stream`;
  const R = mode ? `R ${mode}` : "R";
  phase(`${R}: opening streams`);
  const pool = await openSubscribers({ url, token: key, count: subscribers, threads, eventPrefix: prefix, maxEvents: total, reconnect: true });
  try {
    log(`  ${pool.ready.open}/${subscribers} reconnecting streams open in ${(pool.ready.open_ms / 1000).toFixed(1)} s`);
    const via = agent(64);
    const accepted = new Uint8Array(total);
    const acceptedAt = new Float64Array(total); // epoch ms of the 2xx
    const firstSent = new Float64Array(total);
    const statuses = {};
    const errors = {};
    let retries = 0;
    let eventsRetried = 0;
    let refused = 0;
    let gaveUp = 0;
    const inflight = new Set();

    // One agent's event: the same body (same id) until a 2xx, backing off 100 ms, 200 ms, …
    // up to 2 s (with jitter), for at most giveUpMs; a 4xx other than 408/429 is final.
    async function post(i) {
      const body = usageEvent({ id: `${prefix}${i}`, sid, tid, extra: { bench_i: i, sent_at_ms: nowMs() } });
      firstSent[i] = nowMs();
      const giveUpAt = performance.now() + giveUpMs;
      for (let attempt = 0; ; attempt++) {
        let status = null;
        try {
          const res = await request(base, "POST", "/v1/callbacks", { token: key, body, agent: via, timeoutMs: 15_000 });
          status = res.status;
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (status >= 200 && status < 300) {
            accepted[i] = 1;
            acceptedAt[i] = nowMs();
            return;
          }
          if (!retryable(status)) {
            refused++;
            return;
          }
        } catch (e) {
          const k = e.message.replace(/\d+/g, "N").slice(0, 80);
          errors[k] = (errors[k] ?? 0) + 1;
        }
        if (performance.now() > giveUpAt) {
          gaveUp++;
          return;
        }
        retries++;
        if (attempt === 0) eventsRetried++;
        await sleep(Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2));
      }
    }

    phase(`${R}: posting at ${ratePerS}/s, restart at ${restartAtMs / 1000} s`);
    const start = performance.now();
    const startEpoch = nowMs();
    let behindMax = 0;
    let restartP = null;
    let acceptedAtTrigger = null;
    for (let i = 0; i < total; i++) {
      const target = start + (i * 1000) / ratePerS;
      const wait = target - performance.now();
      if (wait > 1) await sleep(wait);
      if (!restartP && performance.now() - start >= restartAtMs) {
        acceptedAtTrigger = accepted.reduce((n, x) => n + x, 0);
        log(`  restarting ${system.name}${mode ? ` (${mode})` : ""} (${acceptedAtTrigger} accepted so far)`);
        // probe: a read served by the topic's hub, for a restart that is over only once the
        // hub answers again (Switchboard's redeploy).
        restartP = system.restart({ mode, teamId, sid, tid, probe: () => appliedCount(base, key, sid, tid) }).then(
          (r) => {
            log(`  restarted: ready ${(r.ready_ms / 1000).toFixed(1)} s after the trigger`);
            return r;
          },
          (e) => ({ error: e.message }),
        );
      }
      behindMax = Math.max(behindMax, performance.now() - target);
      // Agents are independent: a generous cap, only so a dead system cannot pile up without end.
      while (inflight.size >= 4096) await Promise.race(inflight);
      const p = post(i).finally(() => inflight.delete(p));
      inflight.add(p);
    }
    const sendMs = performance.now() - start;
    await Promise.all(inflight);
    const restart = (await restartP) ?? { error: "the run ended before the restart time" };
    via.destroy();
    const acceptedCount = accepted.reduce((n, x) => n + x, 0);
    log(`  posted ${total} in ${(sendMs / 1000).toFixed(1)} s; ${acceptedCount} accepted after ${retries} retries (${eventsRetried} events retried), ${refused} refused, ${gaveUp} given up; statuses ${JSON.stringify(statuses)}`);

    phase(`${R}: waiting for deliveries`);
    const got = await pool.collect(accepted, collectWaitMs);

    // What the system has: its counter of applied events, once it stops moving.
    phase(`${R}: waiting for the system to apply`);
    const d0 = performance.now();
    let applied = await appliedCount(base, key, sid, tid).catch(() => null);
    let stableSince = performance.now();
    while (applied !== null && applied < acceptedCount && performance.now() - d0 < drainTimeoutMs && performance.now() - stableSince < 10_000) {
      await sleep(250);
      const a = await appliedCount(base, key, sid, tid).catch(() => applied);
      if (a !== applied) stableSince = performance.now();
      applied = a;
    }
    await pool.terminate();

    // Events accepted that no subscriber received, by when they were accepted.
    const began = restart.began_epoch_ms ?? Number.POSITIVE_INFINITY;
    const ready = began + (restart.ready_ms ?? 0);
    const nobody = { total: 0, accepted_before_restart: 0, accepted_during_restart: 0, accepted_after_restart: 0, first_indices: [] };
    let partially = 0;
    for (let i = 0; i < total; i++) {
      if (!accepted[i]) continue;
      const n = got.receivedBy[i];
      if (n === 0) {
        nobody.total++;
        if (nobody.first_indices.length < 10) nobody.first_indices.push(i);
        if (acceptedAt[i] < began) nobody.accepted_before_restart++;
        else if (acceptedAt[i] <= ready) nobody.accepted_during_restart++;
        else nobody.accepted_after_restart++;
      } else if (n < subscribers) partially++;
    }
    const postToAccept = [];
    for (let i = 0; i < total; i++) if (accepted[i]) postToAccept.push(acceptedAt[i] - firstSent[i]);
    const lat = summarize(got.latencies);
    const missed = got.subs.reduce((n, s) => n + s.lost, 0);
    const complete = got.subs.filter((s) => s.lost === 0).length;
    const downs = got.subs.map((s) => s.downs ?? 0);
    const downMs = got.subs.filter((s) => s.downs > 0).map((s) => s.down_ms);
    const mergeCounts = (field) => {
      const out = {};
      for (const s of got.subs) for (const [k, v] of Object.entries(s[field] ?? {})) out[k] = (out[k] ?? 0) + v;
      return out;
    };
    const resumed = got.subs.reduce((n, s) => n + (s.resumed_with_last_event_id ?? 0), 0);
    log(`  ${downs.reduce((a, b) => a + b, 0)} stream drops (${got.subs.filter((s) => s.downs > 0).length}/${subscribers} subscribers), ${resumed} reconnections resumed with Last-Event-ID, ${got.subs.reduce((n, s) => n + (s.resets ?? 0), 0)} resets`);
    log(`  missed ${missed} of ${acceptedCount * subscribers} deliveries; ${complete}/${subscribers} subscribers got every event; received by nobody ${nobody.total}; applied by the system ${applied} of ${acceptedCount}`);
    return {
      mode,
      subscribers,
      rate_target_per_s: ratePerS,
      duration_ms: durationMs,
      restart_at_ms: restartAtMs,
      restart,
      rate_achieved_per_s: Math.round((total / (sendMs / 1000)) * 10) / 10,
      sender_max_behind_schedule_ms: Math.round(behindMax),
      sent: total,
      accepted: acceptedCount,
      accepted_when_restart_triggered: acceptedAtTrigger,
      retries,
      events_retried: eventsRetried,
      refused,
      gave_up: gaveUp,
      statuses,
      network_errors: errors,
      first_send_to_accepted_ms: summarize(postToAccept),
      streams_open: pool.ready.open,
      expected_deliveries: acceptedCount * subscribers,
      delivered: lat.count,
      missed_deliveries: missed,
      subscribers_with_every_event: complete,
      duplicates: got.subs.reduce((n, s) => n + s.duplicates, 0),
      received_by_nobody: nobody,
      received_by_some_not_all: partially,
      stream_drops: { total: downs.reduce((a, b) => a + b, 0), per_subscriber_max: Math.max(0, ...downs), reasons: mergeCounts("down_reasons"), reconnect_statuses: mergeCounts("statuses"), resets: got.subs.reduce((n, s) => n + (s.resets ?? 0), 0), resumed_with_last_event_id: got.subs.reduce((n, s) => n + (s.resumed_with_last_event_id ?? 0), 0), reopened_without_last_event_id: got.subs.reduce((n, s) => n + (s.reopened_without_last_event_id ?? 0), 0), subscribers_dropped: got.subs.filter((s) => s.downs > 0).length, still_down_at_end: got.subs.filter((s) => s.still_down).length },
      time_without_stream_ms: summarize(downMs),
      latency_ms: lat,
      applied_by_system_at_end: applied,
      not_applied: applied === null ? null : Math.max(0, acceptedCount - applied),
      start_epoch_ms: startEpoch,
    };
  } finally {
    await pool.terminate();
  }
}
