// The machine the numbers were measured on.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

export function machine({ wranglerVersion }) {
  const read = (f) => {
    try {
      return readFileSync(f, "utf8");
    } catch {
      return "";
    }
  };
  const nproc = spawnSync("nproc", { encoding: "utf8" }).stdout?.trim() || String(os.availableParallelism());
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(read("/proc/meminfo"))?.[1] ?? 0);
  const cpu = /^model name\s*:\s*(.+)$/m.exec(read("/proc/cpuinfo"))?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
  return {
    nproc: Number(nproc),
    mem_total_kb: memKb,
    mem_total_gib: Math.round((memKb / 1024 / 1024) * 10) / 10,
    cpu_model: cpu,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    wrangler: wranglerVersion,
  };
}
