// bench/RESULTS.md from the measured results (bench/results.json holds the same, raw).
const TARGETS = {
  accepted_per_s: 500,
  p99_ms_100: 250,
};

const fmt = (x, unit = "") => (x === null || x === undefined ? "n/a" : `${typeof x === "number" ? x.toLocaleString("en-US") : x}${unit}`);
const met = (ok) => (ok ? "met" : "**missed**");

export function renderResults(r) {
  const a = r.scenarios.throughput;
  const b100 = r.scenarios.latency.find((s) => s.subscribers === 100);
  const b1000 = r.scenarios.latency.find((s) => s.subscribers === 1000);
  const mib = (kb) => `${fmt(Math.round(kb / 1024))} MiB`;
  const lines = [];
  lines.push("# Switchboard benchmark results", "");
  lines.push(`Measured ${r.date} by \`${r.command}\` (bench/run.mjs). Raw numbers: \`bench/results.json\`.`, "");
  lines.push("## Machine", "");
  lines.push(`- CPUs (\`nproc\`): ${r.machine.nproc}`);
  lines.push(`- CPU model: ${r.machine.cpu_model}`);
  lines.push(`- Memory (MemTotal): ${fmt(r.machine.mem_total_kb)} kB (${r.machine.mem_total_gib} GiB)`);
  lines.push(`- Kernel: ${r.machine.kernel}`);
  lines.push(`- Node ${r.machine.node}, wrangler ${r.machine.wrangler}`);
  lines.push("");
  lines.push("## Setup", "");
  lines.push(
    `The Worker runs under \`wrangler dev\` on ${r.setup.base} (local D1, Queues, Durable Objects persisted to a fresh temp dir, migrations applied first). ` +
      `The bench client runs on the same machine: the sender on the main thread, SSE subscribers in worker threads, all over plain \`node:http\` (one TCP connection per stream). ` +
      `Callbacks are single \`usage.reported\` events. Latency is the time from just before a callback's POST is sent to the arrival of the chunk that completes its SSE event at a subscriber (same clock), ` +
      `so it covers the Worker, the queue, the consumer, the TopicHub and the fan-out. ` +
      `The paced sender uses up to 64 keep-alive connections and keeps at most 512 callbacks in flight, so when the Worker answers more slowly than the schedule it falls behind (the achieved rate is shown). ` +
      `Subscribers do not reconnect: a stream the server closes stays closed, and its missing events count as lost.`,
    "",
  );
  lines.push("## Results against the issue's targets", "");
  lines.push("| Measure | Target (issue) | Measured | |");
  lines.push("|---|---|---|---|");
  lines.push(`| Callbacks accepted (202) per second, ${a.concurrency} concurrent senders, ${Math.round(a.duration_ms / 1000)} s | 500/s | ${fmt(a.accepted_per_s)}/s | ${met(a.accepted_per_s >= TARGETS.accepted_per_s)} |`);
  if (b100) {
    lines.push(`| p99 delivery at ${b100.rate_target_per_s}/s, 100 subscribers | under 250 ms | ${fmt(b100.latency_ms.p99)} ms (p50 ${fmt(b100.latency_ms.p50)} ms) | ${met(b100.latency_ms.p99 !== null && b100.latency_ms.p99 < TARGETS.p99_ms_100 && b100.lost === 0)} |`);
    lines.push(`| Events lost, 100 subscribers | 0 | ${fmt(b100.lost)} of ${fmt(b100.expected_deliveries)} deliveries | ${met(b100.lost === 0)} |`);
  }
  if (b1000) {
    lines.push(
      `| 1,000 concurrent subscribers on one topic, each receiving every event | every subscriber gets every event | ${fmt(b1000.subscribers_with_every_event)} of 1,000 got every event; ${fmt(b1000.lost)} of ${fmt(b1000.expected_deliveries)} deliveries lost | ${met(b1000.every_subscriber_got_every_event)} |`,
    );
    lines.push(`| p50 / p99 delivery at ${b1000.rate_target_per_s}/s, 1,000 subscribers | (no target) | ${fmt(b1000.latency_ms.p50)} ms / ${fmt(b1000.latency_ms.p99)} ms | |`);
  }
  lines.push(`| Peak RSS of workerd under \`wrangler dev\` (sampled every ${r.memory.interval_ms} ms) | (no target) | ${mib(r.memory.peak_kb)} | |`);
  lines.push("");

  lines.push("## Details", "");
  lines.push(`### A. Throughput`, "");
  lines.push(`- Sent ${fmt(a.sent)} callbacks in ${fmt(a.duration_ms)} ms; ${fmt(a.accepted)} accepted; statuses ${JSON.stringify(a.statuses)}; network errors ${a.network_errors}.`);
  lines.push(`- POST latency (ms): p50 ${fmt(a.request_latency_ms.p50)}, p99 ${fmt(a.request_latency_ms.p99)}, max ${fmt(a.request_latency_ms.max)}.`);
  lines.push(
    a.drain.drained
      ? `- The queue consumer had applied all ${fmt(a.drain.applied)} accepted events ${fmt(a.drain.ms_from_first_post)} ms after the first post: ${fmt(a.drain.applied_per_s)} applied/s end to end.`
      : `- The queue consumer had applied ${fmt(a.drain.applied)} of ${fmt(a.accepted)} accepted events when the drain wait ran out, ${fmt(a.drain.ms_from_first_post)} ms after the first post (${fmt(a.drain.applied_per_s)} applied/s).`,
  );
  if (a.first_errors.length) lines.push(`- First refusals/errors: ${a.first_errors.map((e) => `\`${e.replace(/`/g, "'")}\``).join("; ")}`);
  lines.push("");

  lines.push("### B. Delivery latency", "");
  lines.push(
    "Percentiles are over the deliveries that arrived before the wait ended; deliveries that never arrived are counted as lost, not in the percentiles. " +
      "The split uses the TopicHub's apply time in each envelope (`received_at`, workerd's clock on the same machine): sent → applied is the Worker, the queue and the consumer; applied → delivered is the fan-out from the hub to the client.",
    "",
  );
  lines.push("| Subscribers | Sent at (target / achieved) | Accepted | Deliveries (expected / received) | Lost | p50 | p90 | p99 | max | Every subscriber got every event | Streams ended early |");
  lines.push("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const s of r.scenarios.latency) {
    lines.push(
      `| ${fmt(s.subscribers)} | ${s.rate_target_per_s}/s / ${fmt(s.rate_achieved_per_s)}/s | ${fmt(s.accepted)} of ${fmt(s.sent)} | ${fmt(s.expected_deliveries)} / ${fmt(s.delivered)} | ${fmt(s.lost)} | ${fmt(s.latency_ms.p50)} ms | ${fmt(s.latency_ms.p90)} ms | ${fmt(s.latency_ms.p99)} ms | ${fmt(s.latency_ms.max)} ms | ${s.every_subscriber_got_every_event ? "yes" : "no"} (${fmt(s.subscribers_with_every_event)} of ${fmt(s.subscribers)}) | ${fmt(s.streams_ended_early)} |`,
    );
  }
  lines.push("");
  lines.push("| Subscribers | sent → applied p50 / p99 | applied → delivered p50 / p99 | Applied by the TopicHub when posting ended | … when the wait ended |");
  lines.push("|---|---|---|---|---|");
  for (const s of r.scenarios.latency) {
    lines.push(
      `| ${fmt(s.subscribers)} | ${fmt(s.sent_to_applied_ms.p50)} / ${fmt(s.sent_to_applied_ms.p99)} ms | ${fmt(s.applied_to_delivered_ms.p50)} / ${fmt(s.applied_to_delivered_ms.p99)} ms | ${fmt(s.applied_by_topic_hub.after_posting)} of ${fmt(s.accepted)} | ${fmt(s.applied_by_topic_hub.after_wait)} of ${fmt(s.accepted)} (after ${fmt(s.collect_waited_ms)} ms, at most ${fmt(s.collect_wait_ms)} ms) |`,
    );
  }
  lines.push("");
  for (const s of r.scenarios.latency) {
    const ends = s.stream_ends_s_after_first_post;
    lines.push(
      `- ${fmt(s.subscribers)} subscribers: ${fmt(s.streams_open)} streams opened (each with its snapshot) in ${fmt(s.open_ms)} ms${s.streams_failed_to_open ? `, ${s.streams_failed_to_open} failed (${s.open_failures.join("; ")})` : ""}. ` +
        (ends ? `${fmt(s.streams_ended_early)} streams were closed by the server before the end (\`${s.stream_end_reasons.join("; ")}\`), ${ends.min}–${ends.max} s after the first paced callback, having received ${s.received_before_end.min}–${s.received_before_end.max} events each. ` : "") +
        `Duplicates ${fmt(s.duplicates)}; POST statuses ${JSON.stringify(s.statuses)}, network errors ${s.network_errors}; the sender was at most ${fmt(s.sender_max_behind_schedule_ms)} ms behind its schedule. ` +
        `Client event-loop delay p99: sender ${s.client_event_loop_delay_ms.sender.p99} ms, subscriber thread(s) ${s.client_event_loop_delay_ms.subscriber_threads.map((l) => `${l.p99} ms`).join(" / ")}` +
        (s.applied_by_topic_hub.drain_before_next ? `. Before the next run the queue drained: ${fmt(s.applied_by_topic_hub.drain_before_next.applied)} of ${fmt(s.accepted)} applied ${fmt(s.applied_by_topic_hub.drain_before_next.ms)} ms after the wait.` : "."),
    );
  }
  lines.push("");
  lines.push("### Memory and CPU by phase", "");
  lines.push(
    `Sampled every ${r.memory.interval_ms} ms from /proc. Peak summed VmRSS of the ${r.memory.workerd_processes} workerd processes in wrangler dev's process group: ${mib(r.memory.peak_kb)} ` +
      `(per process: ${Object.entries(r.memory.per_process_peak_kb).map(([l, kb]) => `${l} ${mib(kb)}`).join("; ")}). ` +
      `CPU is each process's user+system time over the phase's wall time, in % of one core (this machine has ${r.machine.nproc}).`,
    "",
  );
  const labels = [...new Set(r.memory.phases.flatMap((p) => Object.keys(p.cpu_percent_of_one_core)))];
  lines.push(`| Phase | Wall | Peak workerd RSS | ${labels.map((l) => `CPU ${l}`).join(" | ")} |`);
  lines.push(`|---|---|---|${labels.map(() => "---|").join("")}`);
  // CPU over a phase shorter than a second is mostly sampling noise (10 ms ticks).
  for (const p of r.memory.phases) lines.push(`| ${p.phase} | ${p.wall_s} s | ${mib(p.peak_workerd_rss_kb)} | ${labels.map((l) => (p.cpu_percent_of_one_core[l] === undefined || p.wall_s < 1 ? "–" : `${p.cpu_percent_of_one_core[l]}%`)).join(" | ")} |`);
  lines.push("");
  if (r.notes?.length) {
    lines.push("## Notes", "");
    for (const n of r.notes) lines.push(`- ${n}`);
    lines.push("");
  }
  return lines.join("\n");
}
