// Process-group inspection through /proc (Linux): which processes belong to wrangler dev's
// group, the resident memory (VmRSS) of its workerd processes and the CPU time of each
// process, sampled periodically and attributed to the bench's phases.
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;

function readStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // pid (comm) state ppid pgrp … utime stime …; comm may contain spaces and parentheses.
    const close = stat.lastIndexOf(")");
    const fields = stat.slice(close + 2).split(" ");
    return { comm: stat.slice(stat.indexOf("(") + 1, close), state: fields[0], ppid: Number(fields[1]), pgrp: Number(fields[2]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** [{pid, comm, cpuTicks}] of every live process whose process group id is pgid. */
export function groupProcesses(pgid) {
  const out = [];
  let entries;
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(name);
    if (st && st.state !== "Z" && st.pgrp === pgid) out.push({ pid: Number(name), comm: st.comm, cpuTicks: st.cpuTicks });
  }
  return out;
}

/**
 * [{pid, comm, cpuTicks}] of a process and all its descendants: for PostgreSQL, whose
 * backends and background processes each call setsid() and so leave the postmaster's group.
 */
export function processTree(rootPid) {
  const all = [];
  let entries;
  try {
    entries = readdirSync("/proc");
  } catch {
    return all;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(name);
    if (st && st.state !== "Z") all.push({ pid: Number(name), ppid: st.ppid, comm: st.comm, cpuTicks: st.cpuTicks });
  }
  const inTree = new Set([rootPid]);
  // Parents have lower pids except after wrap-around: repeat until nothing is added.
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) if (!inTree.has(p.pid) && inTree.has(p.ppid)) (inTree.add(p.pid), (grew = true));
  }
  return all.filter((p) => inTree.has(p.pid)).map(({ pid, comm, cpuTicks }) => ({ pid, comm, cpuTicks }));
}

/** VmRSS of a process in kB, or 0 when it is gone. */
export function rssKb(pid) {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Proportional set size in kB (smaps_rollup): shared pages split between the processes that
 * map them, so summing it over PostgreSQL's backends does not count shared_buffers N times
 * as summing VmRSS does. 0 when unreadable.
 */
export function pssKb(pid) {
  try {
    const m = /^Pss:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

/**
 * What a process of wrangler dev's group is: wrangler 4 runs two workerd processes, a proxy
 * listening on the public port and the runtime (Worker, Durable Objects, local D1 and queues)
 * on a private one.
 */
export function labeler(publicAddr) {
  const cache = new Map();
  return (p) => {
    let label = cache.get(p.pid);
    if (label) return label;
    const cmd = cmdline(p.pid);
    if (p.comm === "workerd") label = cmd.includes(`--socket-addr=entry=${publicAddr}`) ? "workerd: wrangler's proxy (public port)" : "workerd: runtime (Worker, DOs, local D1 and queues)";
    else if (cmd.includes("wrangler-dist/cli.js")) label = "node: wrangler";
    else if (/\bbin\/wrangler(\.js)? /.test(cmd)) label = "node: wrangler launcher";
    else if (p.comm === "esbuild") label = "esbuild (wrangler's watcher)";
    else label = p.comm;
    cache.set(p.pid, label);
    return label;
  };
}

/**
 * Samples the group every intervalMs: summed VmRSS of its workerd processes (peak overall,
 * per phase and per process) and CPU seconds per process per phase, plus this process's
 * own CPU (the bench client, all its threads). phase(name) starts a new phase.
 */
export function startRssSampler(pgid, publicAddr, intervalMs = 500) {
  const label = labeler(publicAddr);
  const peak = { kb: 0, processes: 0 };
  const perProcessPeakKb = {};
  const phases = [];
  let current = null;
  let samples = 0;

  const sample = () => {
    const procs = groupProcesses(pgid);
    const workerd = procs.filter((p) => p.comm === "workerd");
    let kb = 0;
    for (const p of workerd) {
      const r = rssKb(p.pid);
      kb += r;
      const l = label(p);
      perProcessPeakKb[l] = Math.max(perProcessPeakKb[l] ?? 0, r);
    }
    samples++;
    if (kb > peak.kb) Object.assign(peak, { kb, processes: workerd.length });
    if (current && kb > current.peak_kb) current.peak_kb = kb;
    return procs;
  };
  const ticksByLabel = (procs) => {
    const out = {};
    for (const p of procs) out[label(p)] = (out[label(p)] ?? 0) + p.cpuTicks;
    return out;
  };
  const closePhase = (procs) => {
    if (!current) return;
    const wallS = (performance.now() - current.t0) / 1000;
    const ticks = ticksByLabel(procs);
    const cpu = {};
    for (const [l, t] of Object.entries(ticks)) cpu[l] = Math.round(((t - (current.ticks[l] ?? 0)) / CLK_TCK / wallS) * 100);
    const self = process.cpuUsage(current.self);
    cpu["node: bench client (this process)"] = Math.round(((self.user + self.system) / 1e6 / wallS) * 100);
    phases.push({ phase: current.name, wall_s: Math.round(wallS * 10) / 10, peak_workerd_rss_kb: current.peak_kb, cpu_percent_of_one_core: cpu });
  };
  const open = (name, procs) => {
    current = { name, t0: performance.now(), ticks: ticksByLabel(procs), self: process.cpuUsage(), peak_kb: 0 };
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
      return { interval_ms: intervalMs, samples, peak_kb: peak.kb, workerd_processes: peak.processes, per_process_peak_kb: perProcessPeakKb, phases };
    },
  };
}
