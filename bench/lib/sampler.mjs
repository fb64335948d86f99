// Memory and CPU of one system's processes, whatever they are (wrangler dev's workerd; the
// peer's Node processes, PostgreSQL and Redis; the limit's Node process), sampled from /proc
// and attributed to the bench's phases. The list is asked for at every sample, so processes
// that a restart replaces are followed.
import { pssKb, rssKb } from "./procs.mjs";

const CLK_TCK = 100; // Linux's USER_HZ on every architecture the bench runs on

/**
 * `processes()` returns [{pid, label, cpuTicks, counted}]: `counted` ones make the system's
 * memory (e.g. not wrangler's own Node process, which is dev tooling). Returns
 * { phase(name), stop() → summary }. CPU of a process that exited during a phase is lost
 * with it (only restarts do that).
 */
export function startSystemSampler(processes, intervalMs = 500) {
  const peak = { rss_kb: 0, pss_kb: 0, processes: 0 };
  const perLabelPeakRssKb = {};
  const uncountedPeakRssKb = {};
  const phases = [];
  let current = null;
  let samples = 0;

  const sample = () => {
    const procs = processes();
    let rss = 0;
    let pss = 0;
    let counted = 0;
    const byLabel = {};
    for (const p of procs) {
      if (!p.counted) {
        // Shown apart (wrangler's own Node process, esbuild): dev tooling, not the system.
        uncountedPeakRssKb[p.label] = Math.max(uncountedPeakRssKb[p.label] ?? 0, rssKb(p.pid));
        continue;
      }
      const r = rssKb(p.pid);
      rss += r;
      pss += pssKb(p.pid);
      counted++;
      byLabel[p.label] = (byLabel[p.label] ?? 0) + r;
    }
    for (const [l, kb] of Object.entries(byLabel)) perLabelPeakRssKb[l] = Math.max(perLabelPeakRssKb[l] ?? 0, kb);
    samples++;
    if (rss > peak.rss_kb) Object.assign(peak, { rss_kb: rss, processes: counted });
    peak.pss_kb = Math.max(peak.pss_kb, pss);
    if (current) {
      current.peak_rss_kb = Math.max(current.peak_rss_kb, rss);
      current.peak_pss_kb = Math.max(current.peak_pss_kb, pss);
    }
    return procs;
  };
  // Ticks per pid, so a process that is replaced does not make its label's CPU negative.
  const ticksByPid = (procs) => new Map(procs.map((p) => [p.pid, { label: p.label, ticks: p.cpuTicks }]));
  const closePhase = (procs) => {
    if (!current) return;
    const wallS = (performance.now() - current.t0) / 1000;
    const cpu = {};
    for (const [pid, { label, ticks }] of ticksByPid(procs)) cpu[label] = (cpu[label] ?? 0) + ticks - (current.ticks.get(pid)?.ticks ?? 0);
    for (const l of Object.keys(cpu)) cpu[l] = Math.round((cpu[l] / CLK_TCK / wallS) * 100);
    const self = process.cpuUsage(current.self);
    cpu["node: bench client (this process)"] = Math.round(((self.user + self.system) / 1e6 / wallS) * 100);
    phases.push({ phase: current.name, wall_s: Math.round(wallS * 10) / 10, peak_rss_kb: current.peak_rss_kb, peak_pss_kb: current.peak_pss_kb, cpu_percent_of_one_core: cpu });
  };
  const open = (name, procs) => {
    current = { name, t0: performance.now(), ticks: ticksByPid(procs), self: process.cpuUsage(), peak_rss_kb: 0, peak_pss_kb: 0 };
  };

  open("setup (team, session)", sample());
  const timer = setInterval(sample, intervalMs);
  return {
    phase(name) {
      const procs = sample();
      closePhase(procs);
      open(name, procs);
    },
    stop() {
      clearInterval(timer);
      closePhase(sample());
      current = null;
      return { interval_ms: intervalMs, samples, peak_rss_kb: peak.rss_kb, peak_pss_kb: peak.pss_kb, processes_at_peak: peak.processes, per_label_peak_rss_kb: perLabelPeakRssKb, not_counted_peak_rss_kb: uncountedPeakRssKb, phases };
    },
  };
}
