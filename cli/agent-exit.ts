import type { ChildProcess } from "node:child_process";
import { sleep } from "./context";

/** How the agent ended: its exit code or signal, or why it could not start. */
export interface AgentExit {
  code: number | null;
  signal?: NodeJS.Signals | null;
  error?: string;
}

/**
 * After the agent exits, what is left of its process group (a background child it started)
 * has this long to stop after SIGTERM before SIGKILL; meanwhile the pipes are read to the end.
 */
export const LEFTOVER_GRACE_MS = 1000;

/**
 * The step ends when the agent exits, not when its pipes close: a background child it left
 * behind holds them open for as long as it runs. What it wrote before exiting is in the pipes
 * already and is read while what it left is stopped (SIGTERM to the group, SIGKILL after
 * `graceMs`), so the step's process group does not outlive the step.
 */
export async function agentExit(child: ChildProcess, graceMs = LEFTOVER_GRACE_MS): Promise<AgentExit> {
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const exit = await new Promise<AgentExit>((resolve) => {
    child.once("error", (e) => resolve({ code: null, error: e.message }));
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  const pgid = child.pid;
  if (pgid === undefined) return exit; // never started: no group, no pipes with a writer
  signalGroup(pgid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  await Promise.race([closed, sleep(graceMs)]);
  // The pipes may close before a leftover that wrote elsewhere (a file, /dev/null) has stopped.
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(25);
  if (groupAlive(pgid)) {
    signalGroup(pgid, "SIGKILL");
    // What the killed wrote is still in the pipes; one that escaped the group (setsid) is not waited for.
    await Promise.race([closed, sleep(200)]);
  }
  child.stdout?.destroy();
  child.stderr?.destroy();
  return exit;
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {} // gone already
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
