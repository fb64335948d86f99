// Process inspection through /proc (Linux): which processes belong to a group or a tree,
// their resident memory (VmRSS, PSS) and CPU ticks, and labels for wrangler dev's processes.
// bench/lib/sampler.mjs samples them over the bench's phases.
import { readFileSync, readdirSync, readlinkSync } from "node:fs";


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

/** The loopback TCP ports a process listens on (from /proc/net/tcp and its socket fds). */
export function listeningPorts(pid) {
  const inodes = new Set();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {}
    }
  } catch {
    return [];
  }
  const ports = [];
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; the inode is field 9.
    if (f.length > 9 && f[3] === "0A" && inodes.has(f[9])) ports.push(Number.parseInt(f[1].split(":")[1], 16));
  }
  return ports;
}
