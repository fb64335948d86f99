// A worker thread holding a share of the SSE subscribers, so their parsing never delays the
// main thread's paced callbacks. Protocol with bench/lib/subscribers.mjs:
//   → {type: "ready", open, failed}             once every stream got its snapshot (or failed)
//   ← {type: "expect", accepted, deadlineMs}     flags of the event indices that were accepted
//   → {type: "result", latencies, subs, loop}    when all got every accepted one, or at deadline
import http from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import { nowMs, openReconnectingSse, openSse } from "./sse-client.mjs";

// reconnect: streams come back with Last-Event-ID when they end (the restart test); else a
// stream the server closes stays closed.
const { url, token, count, eventPrefix, maxEvents, openConcurrency, openTimeoutMs, reconnect = false, defaultRetryMs = 2000 } = workerData;
// How many of this thread's subscribers received each event (an event nobody got is lost).
const receivedBy = new Uint16Array(maxEvents);
// One socket per stream, no pooling limit.
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();

// Per delivery: sent → arrival (the measured latency) and the TopicHub's apply time
// (envelope.received_at) → arrival, which splits it into queue+consumer and fan-out.
let latencies = new Float64Array(1 << 16);
let fanout = new Float64Array(1 << 16);
let nLat = 0;
const record = (total, afterApply) => {
  if (nLat === latencies.length) {
    const grow = (a) => {
      const bigger = new Float64Array(a.length * 2);
      bigger.set(a);
      return bigger;
    };
    latencies = grow(latencies);
    fanout = grow(fanout);
  }
  latencies[nLat] = total;
  fanout[nLat++] = afterApply;
};

// The envelope of one event is the same text for every subscriber: decode it once per text.
const decoded = new Map();
function decode(data) {
  let hit = decoded.get(data);
  if (hit === undefined) {
    hit = null;
    try {
      const env = JSON.parse(data);
      const i = env?.data?.bench_i;
      if (Number.isInteger(i) && i >= 0 && i < maxEvents && env.id === `${eventPrefix}${i}` && typeof env.data.sent_at_ms === "number") hit = { i, sent: env.data.sent_at_ms, applied: Date.parse(env.received_at) };
    } catch {}
    decoded.set(data, hit);
  }
  return hit;
}

const subs = [];
function subscribe() {
  const sub = { status: null, snapshot: false, ended: null, got: new Uint8Array(maxEvents), received: 0, duplicates: 0, unexpected: 0, handle: null, downs: 0, downSince: null, downMs: 0, resets: 0, statuses: {}, downReasons: {}, resumedWithId: 0, reopenedWithoutId: 0 };
  subs.push(sub);
  return new Promise((resolve) => {
    sub.handle = (reconnect ? openReconnectingSse : openSse)(url, {
      headers: { Authorization: `Bearer ${token}` },
      agent,
      connectTimeoutMs: openTimeoutMs,
      defaultRetryMs,
      onOpen: (status, attempt = 0, lastEventId = null) => {
        sub.status = status;
        sub.statuses[status] = (sub.statuses[status] ?? 0) + 1;
        // A reconnection (not the first open) that the server accepted: with the id of the
        // last event received (a resume), or without one (nothing received yet).
        if (attempt > 0 && status === 200) {
          if (lastEventId !== null) sub.resumedWithId++;
          else sub.reopenedWithoutId++;
        }
        if (status === 200 && sub.downSince !== null) {
          sub.downMs += nowMs() - sub.downSince;
          sub.downSince = null;
        }
      },
      onDown: (reason, at) => {
        sub.downs++;
        sub.downReasons[reason] = (sub.downReasons[reason] ?? 0) + 1;
        sub.downSince ??= at;
        resolve();
      },
      onEvent: (ev, at) => {
        if (ev.event === "reset") sub.resets++;
        if (ev.event === "snapshot") {
          sub.snapshot = true;
          resolve();
          return;
        }
        if (ev.event !== "usage.reported") return;
        const hit = decode(ev.data);
        if (!hit) {
          sub.unexpected++;
          return;
        }
        if (sub.got[hit.i]) {
          sub.duplicates++;
          return;
        }
        sub.got[hit.i] = 1;
        sub.received++;
        receivedBy[hit.i]++;
        record(at - hit.sent, at - hit.applied);
      },
      onEnd: (reason) => {
        sub.ended = reason;
        sub.endedAt = nowMs();
        resolve();
      },
    });
  });
}

// Open `count` streams, at most openConcurrency at a time still waiting for their snapshot.
const t0 = nowMs();
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(openConcurrency, count) }, async () => {
    while (next < count) {
      next++;
      await subscribe();
    }
  }),
);
const failed = subs.filter((s) => !s.snapshot).map((s) => s.ended ?? `status ${s.status}`);
parentPort.postMessage({ type: "ready", open: subs.length - failed.length, failed: failed.slice(0, 5), failedCount: failed.length, openMs: nowMs() - t0 });

parentPort.on("message", async (msg) => {
  if (msg.type !== "expect") return;
  const accepted = msg.accepted;
  const expected = [];
  for (let i = 0; i < accepted.length; i++) if (accepted[i]) expected.push(i);
  const complete = (s) => s.received >= expected.length && expected.every((i) => s.got[i]);
  // Bounded wait: until every subscriber has every accepted event (or its stream ended, so
  // it cannot get more), or the deadline.
  while (Date.now() < msg.deadlineMs && !subs.every((s) => s.ended !== null || complete(s))) await new Promise((r) => setTimeout(r, 100));
  const result = subs.map((s) => {
    let have = 0;
    for (const i of expected) have += s.got[i];
    const r = { snapshot: s.snapshot, received: have, lost: expected.length - have, duplicates: s.duplicates, unexpected: s.unexpected, ended: s.ended, ended_at_ms: s.endedAt ?? null };
    if (reconnect) Object.assign(r, { downs: s.downs, down_ms: s.downMs + (s.downSince !== null ? nowMs() - s.downSince : 0), still_down: s.downSince !== null, resets: s.resets, statuses: s.statuses, down_reasons: s.downReasons, resumed_with_last_event_id: s.resumedWithId, reopened_without_last_event_id: s.reopenedWithoutId });
    return r;
  });
  for (const s of subs) {
    s.ended ??= "closed by the bench"; // so a reconnecting stream's onEnd does not count it
    s.handle?.close();
  }
  loop.disable();
  const lat = latencies.slice(0, nLat);
  const fan = fanout.slice(0, nLat);
  parentPort.postMessage(
    { type: "result", latencies: lat, fanout: fan, subs: result, receivedBy, loop: { p50_ms: loop.percentile(50) / 1e6, p99_ms: loop.percentile(99) / 1e6, max_ms: loop.max / 1e6 } },
    [lat.buffer, fan.buffer, receivedBy.buffer],
  );
});
