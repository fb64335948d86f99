import { spawn } from "node:child_process";
import { agentExit, signalGroup } from "../agent-exit";
import { LineCutter } from "../line-cutter";
import { MAX_LINE_BYTES } from "./log-shipper";

export interface AgentExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the command could not start (not found, not executable). */
  error?: string;
}

export interface AgentRun {
  readonly pid: number | undefined;
  /**
   * When the agent exits, not when its pipes close (a child it left running may hold them):
   * what it left in its process group is stopped first, and what it wrote is read.
   */
  readonly exited: Promise<AgentExit>;
  /** SIGTERM to the agent's process group, then SIGKILL after `killAfterMs` if it is still there. */
  stop(killAfterMs: number): void;
  stdout(): string;
  stderr(): string;
}

export interface StartAgentOptions {
  command: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Written to the agent's stdin, then closed: `claude -p` reads its prompt there. */
  input: string;
  /** Each line, a long one cut to its first MAX_LINE_CHARS (the log shipper cuts it further and marks it). */
  onLine: (stream: "stdout" | "stderr", line: string) => void;
  /** The output as it comes, decoded, for the daemon's own terminal (tmux shows it). */
  onChunk?: (stream: "stdout" | "stderr", text: string) => void;
}

/** How much of each stream is kept for the result (the tail) and the JSON report. */
const KEEP_CHARS = 1024 * 1024;
/**
 * What is kept of a line: the logs take at most MAX_LINE_BYTES of one, and a character is at
 * least a byte, so one more lets the log shipper see the line was longer and mark the cut.
 */
export const MAX_LINE_CHARS = MAX_LINE_BYTES + 1;

/**
 * Starts the agent in its own process group (so stopping it stops what it started too), with
 * stdout and stderr read line by line as they come: nothing the daemon does waits on the agent's
 * output, and the agent never waits on the daemon.
 */
export function startAgent(o: StartAgentOptions): AgentRun {
  const [cmd, ...args] = o.command as [string, ...string[]];
  const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, stdio: ["pipe", "pipe", "pipe"], detached: true });
  const kept = { stdout: "", stderr: "" };
  const cutter = (stream: "stdout" | "stderr") => new LineCutter(MAX_LINE_CHARS, (line, cut) => o.onLine(stream, cut ? line : line.replace(/\r$/, "")));
  const lines = { stdout: cutter("stdout"), stderr: cutter("stderr") };
  const read = (stream: "stdout" | "stderr") => (text: string) => {
    o.onChunk?.(stream, text);
    kept[stream] += text;
    if (kept[stream].length > 2 * KEEP_CHARS) kept[stream] = kept[stream].slice(-KEEP_CHARS);
    lines[stream].push(text);
  };
  // Decoded as streams: a character split across two reads must not become two U+FFFD.
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", read("stdout"));
  child.stderr.on("data", read("stderr"));
  // An agent that never reads its stdin closes it early: EPIPE is not an error here.
  child.stdin.on("error", () => {});
  child.stdin.end(o.input);

  let ended = false;
  // As the runner does (`agentExit`): the attempt ends when the agent exits; a background child
  // that still holds its stdout (`sleep 60 &`) gets SIGTERM with the rest of the group, then
  // SIGKILL, while what was already written is read, and a daemonised one (setsid) is not waited for.
  const exited = agentExit(child).then((e): AgentExit => {
    ended = true;
    lines.stdout.end();
    lines.stderr.end();
    return { code: e.code, signal: e.signal ?? null, ...(e.error === undefined ? {} : { error: e.error }) };
  });
  let killTimer: NodeJS.Timeout | undefined;
  void exited.then(() => clearTimeout(killTimer));
  // The agent leads its own group (detached), so the group is signalled, as agentExit does.
  const signal = (sig: NodeJS.Signals) => {
    if (child.pid !== undefined) signalGroup(child.pid, sig);
  };
  return {
    pid: child.pid,
    exited,
    stop(killAfterMs: number) {
      // Not `child.exitCode`: once the agent is gone, `agentExit` is still stopping what it left.
      if (ended) return;
      signal("SIGTERM");
      clearTimeout(killTimer);
      killTimer = setTimeout(() => signal("SIGKILL"), killAfterMs);
    },
    stdout: () => kept.stdout,
    stderr: () => kept.stderr,
  };
}
