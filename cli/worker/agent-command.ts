import { spawnSync } from "node:child_process";
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

/**
 * The command to run: its program found (on PATH, or a path that exists and is executable), a
 * relative path taken from `startDir` (where `switchboard worker` was run, not the worker's own
 * directory the agent runs in) and made absolute. For `sh -c '<script>'` (the fleet config's
 * strings, and the default `claude -p`) the script's first word is looked for too, on PATH or
 * from `agentDir`, where the script will run. Throws an AgentCommandError naming the fix.
 */
export function resolveAgentCommand(command: string[], startDir: string, agentDir: string, env: NodeJS.ProcessEnv): string[] {
  const [program, ...args] = command as [string, ...string[]];
  const checked = checkAgentCommand(command, startDir, agentDir, env);
  if (checked.kind === "program") {
    const found = checked.found;
    if (found.kind === "not-executable") throw new AgentCommandError(`the agent command ${found.path} is not an executable file: chmod +x it, or run it through its interpreter (-- bash ${program}); ${HOW}`);
    throw new AgentCommandError(program.includes("/") ? `the agent command ${found.path} does not exist (${program}, from ${startDir}); ${HOW}` : `the agent command ${program} is not on PATH; install it or ${HOW}`);
  }
  if (checked.kind === "script") throw new AgentCommandError(`the agent command \`${checked.script}\` cannot start here: ${checked.why}; install it or ${HOW}`);
  return [checked.program, ...args];
}

/**
 * What now keeps the agent command (as resolveAgentCommand returned it) from running here, or
 * null: the same check as at startup, made again when a shell answered 126 or 127, to tell a
 * program gone since then from an agent's own script that ran a missing command.
 */
export function agentCommandProblem(command: string[], agentDir: string, env: NodeJS.ProcessEnv): string | null {
  const checked = checkAgentCommand(command, agentDir, agentDir, env);
  if (checked.kind === "script") return checked.why;
  if (checked.kind === "program") return describeFound(command[0] as string, checked.found);
  return null;
}

type Checked = { kind: "ok"; program: string } | { kind: "program"; found: Missing } | { kind: "script"; script: string; why: string };

function checkAgentCommand(command: string[], startDir: string, agentDir: string, env: NodeJS.ProcessEnv): Checked {
  const [program, ...args] = command as [string, ...string[]];
  const found = findProgram(program, startDir, env.PATH);
  if (found.kind !== "found") return { kind: "program", found };
  const shell = /^(?:.*\/)?(?:sh|bash|dash|zsh)$/.test(program) && args[0] === "-c" ? found.path : undefined;
  const script = shell === undefined ? undefined : args[1];
  const word = script?.trim().match(/^[A-Za-z0-9_./+@%-]+(?=\s|;|$)/)?.[0];
  if (shell !== undefined && script !== undefined && word !== undefined) {
    const inner = findProgram(word, agentDir, env.PATH);
    // Not a program: the shell knows its own builtins, keywords and functions (`declare`,
    // `if`, `read` …) better than a list here would, and which of them it has (dash has no
    // `declare`, and a script starting with it fails there).
    if (inner.kind !== "found" && (word.includes("/") || !shellKnows(shell, word, env))) return { kind: "script", script, why: describeFound(word, inner) };
  }
  return { kind: "ok", program: program.includes("/") ? found.path : program };
}

/** Whether `shell -c 'command -v -- WORD'` succeeds: a builtin, a keyword, a function or a program the shell finds. */
function shellKnows(shell: string, word: string, env: NodeJS.ProcessEnv): boolean {
  const asked = spawnSync(shell, ["-c", 'command -v -- "$1" >/dev/null', "sh", word], { env, stdio: "ignore", timeout: 5000 });
  // A shell that could not be asked (it hung, say) is no proof the script cannot run.
  return asked.error !== undefined || asked.status === 0;
}

function describeFound(name: string, found: Missing): string {
  if (found.kind === "not-executable") return `${found.path} is not executable`;
  return name.includes("/") ? `${found.path} does not exist` : `${name} is not on PATH`;
}

type Missing = { kind: "missing"; path: string } | { kind: "not-executable"; path: string };
type Found = { kind: "found"; path: string } | Missing;

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
 * Why an attempt's agent never really ran, or null. It could not be started (ENOENT, EACCES…);
 * or a shell said it could not run a command (126: found but not executable, 127: not found)
 * and the agent command itself no longer passes the startup check (`recheck`: its program or
 * its script's first word is gone or not executable). That is this machine's problem, not the
 * task's: the task is given back and the worker stops. A 126 or 127 from a command that still
 * passes is the agent's own: a script that did its work and then ran a missing command
 * (`claude -p …; notify-send done`) fails its attempt like any other non-zero exit, rather than
 * having its work thrown away and stopping every worker that claims the task in turn.
 */
export function agentDidNotStart(exit: AgentExit, stderr: string, recheck: () => string | null): string | null {
  if (exit.error !== undefined) return `it could not be started: ${exit.error}`;
  if (exit.code !== 126 && exit.code !== 127) return null;
  const problem = recheck();
  if (problem === null) return null;
  const said = stderr.trim().split("\n").at(-1)?.slice(0, 300);
  // Not "not found" for 127: dash says 127 for a program on PATH it may not execute, too.
  return `it exited with ${exit.code} (a shell that could not run a command)${said ? `: ${said}` : ""}, and ${problem}`;
}
