import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import type { AgentExit } from "./agent-process";

/**
 * The agent command, checked before the first claim: a command that cannot start would
 * otherwise fail every task of the role, one attempt after another, within a minute.
 */

/** A command that will not do, and what to do about it. */
export class AgentCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError"; // argv commands turn it into exit 2, with the usage hint
  }
}

const HOW = "give the agent command after -- (switchboard worker --role ROLE -- ./my-agent.sh), or set the role's command in switchboard.fleet.json";

/** Words a `sh -c` script may start with that are not a program to look for. */
const SHELL_WORDS = new Set(["!", ".", ":", "[", "[[", "{", "(", "cd", "command", "exec", "export", "eval", "for", "if", "case", "while", "until", "set", "source", "time", "true", "false", "echo", "printf", "test", "trap", "umask", "ulimit", "unset", "builtin", "nohup"]);

/**
 * The command to run: its program found (on PATH, or a path that exists and is executable), a
 * relative path taken from `startDir` (where `switchboard worker` was run, not the worker's own
 * directory the agent runs in) and made absolute. For `sh -c '<script>'` (the fleet config's
 * strings, and the default `claude -p`) the script's first word is looked for too, on PATH or
 * from `agentDir`, where the script will run. Throws an AgentCommandError naming the fix.
 */
export function resolveAgentCommand(command: string[], startDir: string, agentDir: string, env: NodeJS.ProcessEnv): string[] {
  const [program, ...args] = command as [string, ...string[]];
  const found = findProgram(program, startDir, env.PATH);
  if (found.kind === "missing") {
    throw new AgentCommandError(program.includes("/") ? `the agent command ${found.path} does not exist (${program}, from ${startDir}); ${HOW}` : `the agent command ${program} is not on PATH; install it or ${HOW}`);
  }
  if (found.kind === "not-executable") throw new AgentCommandError(`the agent command ${found.path} is not an executable file: chmod +x it, or run it through its interpreter (-- bash ${program}); ${HOW}`);
  const script = /^(?:.*\/)?(?:sh|bash|dash|zsh)$/.test(program) && args[0] === "-c" ? args[1] : undefined;
  const word = script?.trim().match(/^[A-Za-z0-9_./+@%-]+(?=\s|;|$)/)?.[0];
  if (script !== undefined && word !== undefined && !SHELL_WORDS.has(word)) {
    const inner = findProgram(word, agentDir, env.PATH);
    if (inner.kind !== "found") {
      const why = inner.kind === "missing" ? (word.includes("/") ? `${inner.path} does not exist` : `${word} is not on PATH`) : `${inner.path} is not executable`;
      throw new AgentCommandError(`the agent command \`${script}\` cannot start here: ${why}; install it or ${HOW}`);
    }
  }
  return [found.kind === "found" && program.includes("/") ? found.path : program, ...args];
}

type Found = { kind: "found"; path: string } | { kind: "missing"; path: string } | { kind: "not-executable"; path: string };

/** A name with a slash is a path (relative ones from `dir`); without, the first match on PATH, as exec does. */
function findProgram(name: string, dir: string, path: string | undefined): Found {
  if (name.includes("/")) {
    const p = isAbsolute(name) ? name : resolve(dir, name);
    return { kind: executable(p) ?? "missing", path: p } as Found;
  }
  let notExecutable: string | null = null;
  for (const d of (path ?? "").split(delimiter)) {
    if (!d) continue;
    const p = join(d, name);
    const kind = executable(p);
    if (kind === "found") return { kind, path: p };
    if (kind === "not-executable") notExecutable ??= p;
  }
  return notExecutable ? { kind: "not-executable", path: notExecutable } : { kind: "missing", path: name };
}

function executable(p: string): "found" | "not-executable" | null {
  try {
    if (!statSync(p).isFile()) return "not-executable";
  } catch {
    return null;
  }
  try {
    accessSync(p, constants.X_OK);
    return "found";
  } catch {
    return "not-executable";
  }
}

/**
 * Why an attempt's agent never really ran, or null: it could not be started (ENOENT, EACCES…),
 * or a shell said it could not run the command (126: found but not executable, 127: not found).
 * That is this machine's problem, not the task's: the task is given back and the worker stops.
 */
export function agentDidNotStart(exit: AgentExit, stderr: string): string | null {
  if (exit.error !== undefined) return `it could not be started: ${exit.error}`;
  if (exit.code !== 126 && exit.code !== 127) return null;
  const said = stderr.trim().split("\n").at(-1)?.slice(0, 300);
  return `it exited with ${exit.code} (${exit.code === 127 ? "a command not found" : "a command found but not executable"})${said ? `: ${said}` : ""}`;
}
