import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";

/**
 * The seed's local fleet: one planner, N executors and one documentation worker (named after
 * this host, so fleets on several machines of one team do not collide), each a
 * `switchboard worker` in its own directory under the fleet's root (`./workers` by default),
 * in a tmux session `switchboard-<worker>` where tmux is installed, else a detached process
 * with its output in `<root>/.fleet/<worker>.log`. `<root>/.fleet/fleet.json` remembers
 * what was started, for `switchboard stop`.
 */

export type AgentCommand = string | string[];

/** `switchboard.fleet.json`: the agent command per role; a string runs through `sh -c`. */
export interface FleetConfig {
  commands?: Record<string, AgentCommand>;
  /** For roles without their own entry (default `claude -p`). */
  default?: AgentCommand;
}

export const DEFAULT_AGENT_COMMAND = "claude -p";
export const FLEET_CONFIG_NAME = "switchboard.fleet.json";

/**
 * The config: `--config`, else `./switchboard.fleet.json`, else
 * `$XDG_CONFIG_HOME/switchboard/fleet.json` (`~/.config/…`); none is fine (every role runs
 * `claude -p`). A file that is there but not valid JSON of this shape is an error.
 */
export function loadFleetConfig(explicit: string | undefined, cwd: string, env: NodeJS.ProcessEnv): { config: FleetConfig; path: string | null } {
  const candidates = explicit ? [resolve(cwd, explicit)] : [join(cwd, FLEET_CONFIG_NAME), join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "switchboard", "fleet.json")];
  for (const path of candidates) {
    if (!existsSync(path)) {
      if (explicit) throw new Error(`no fleet config at ${path}`);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(path, "utf8"));
    } catch (e) {
      throw new Error(`${path} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    return { config: checkConfig(value, path), path };
  }
  return { config: {}, path: null };
}

function checkConfig(value: unknown, path: string): FleetConfig {
  const isCommand = (c: unknown) => (typeof c === "string" && c.trim() !== "") || (Array.isArray(c) && c.length > 0 && c.every((a) => typeof a === "string"));
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${path}: expected an object like {"commands": {"executor": "claude -p"}}`);
  const v = value as Record<string, unknown>;
  if (v.default !== undefined && !isCommand(v.default)) throw new Error(`${path}: "default" must be a command string or an array of arguments`);
  if (v.commands !== undefined) {
    if (typeof v.commands !== "object" || v.commands === null || Array.isArray(v.commands)) throw new Error(`${path}: "commands" must map roles to commands`);
    for (const [role, c] of Object.entries(v.commands)) if (!isCommand(c)) throw new Error(`${path}: commands.${role} must be a command string or an array of arguments`);
  }
  return v as FleetConfig;
}

/** The argv to run for a role: a string becomes `sh -c <string>`, so quoting and pipes work. */
export function commandFor(config: FleetConfig, role: string): string[] {
  const c = config.commands?.[role] ?? config.default ?? DEFAULT_AGENT_COMMAND;
  return typeof c === "string" ? ["sh", "-c", c] : c;
}

export interface FleetMember {
  name: string;
  role: string;
}

/**
 * This machine's part of a worker's default name: the host name's first label, with anything
 * but letters, digits, '_' and '-' as '-'. Worker ids are per team, not per machine, so two
 * machines' workers must not share names (one worker row, one log, `respond` ambiguous).
 */
export function hostPart(): string {
  return (hostname().split(".")[0] ?? "").replace(/[^A-Za-z0-9_-]/g, "-");
}

/** What a fleet name suffix may be: tmux session names take no '.' or ':'. */
export const SUFFIX_PATTERN = /^[A-Za-z0-9_-]{0,64}$/;

/** `planner-1-<suffix>`, `exec-1-<suffix>` … `exec-N-<suffix>`, `docs-1-<suffix>`; an empty suffix: `exec-1` …. */
export function fleetMembers(executors: number, planner: boolean, suffix = hostPart()): FleetMember[] {
  const named = (base: string) => (suffix ? `${base}-${suffix}` : base);
  return [
    ...(planner ? [{ name: named("planner-1"), role: "planner" }] : []),
    ...Array.from({ length: executors }, (_, i) => ({ name: named(`exec-${i + 1}`), role: "executor" })),
    { name: named("docs-1"), role: "documentation" },
  ];
}

interface FleetState {
  mode: "tmux" | "process";
  tmux_socket: string | null;
  started_at: string;
  workers: Array<FleetMember & { dir: string; pid_file: string; log: string; session: string | null }>;
}

export interface StartOptions {
  root: string;
  executors: number;
  planner: boolean;
  /** After each worker's name (`exec-1-<suffix>`); default this host's name, "" for none. */
  suffix?: string;
  config: FleetConfig;
  /** How to run this CLI: `[node, script]`. */
  cli: string[];
  env: NodeJS.ProcessEnv;
  /** Use tmux when it is on PATH (default), never, or always. */
  tmux: "auto" | "never" | "always";
  /** A tmux server of its own (`tmux -L <socket>`), e.g. for tests; default: the user's. */
  tmuxSocket?: string;
  /** Passed on to each `switchboard worker` (e.g. `--grace 60`). */
  workerArgs?: string[];
  out?: (line: string) => void;
}

const stateFile = (root: string) => join(root, ".fleet", "fleet.json");
export const sessionName = (worker: string) => `switchboard-${worker}`;

export function hasTmux(env: NodeJS.ProcessEnv = process.env): boolean {
  return spawnSync("tmux", ["-V"], { env, stdio: "ignore" }).status === 0;
}

function tmux(socket: string | null, args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync("tmux", [...(socket ? ["-L", socket] : []), ...args], { env, encoding: "utf8" });
}

/** Starts every worker of the fleet; refuses when a fleet from this root is still running. */
export function startFleet(o: StartOptions): FleetState {
  const out = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const root = resolve(o.root);
  const fleetDir = join(root, ".fleet");
  const running = runningWorkers(root);
  if (running.length > 0) throw new Error(`a fleet is already running in ${root} (${running.join(", ")}); run \`switchboard stop\` first`);
  const useTmux = o.tmux === "always" || (o.tmux === "auto" && hasTmux(o.env));
  const socket = o.tmuxSocket ?? null;
  const members = fleetMembers(o.executors, o.planner, o.suffix);
  if (useTmux) {
    const taken = members.filter((m) => tmux(socket, ["has-session", "-t", `=${sessionName(m.name)}`], o.env).status === 0);
    if (taken.length > 0) throw new Error(`tmux already has ${taken.map((m) => sessionName(m.name)).join(", ")}; stop it first (tmux kill-session -t …)`);
  }
  mkdirSync(fleetDir, { recursive: true });
  // tmux sessions get the environment of the tmux server, not ours: the workers read ours from
  // this file (owner-only; removed by stop) rather than from a command line others could see.
  const envFile = join(fleetDir, "env.json");
  if (useTmux) {
    writeFileSync(envFile, JSON.stringify(passedEnv(o.env)), { mode: 0o600 });
    chmodSync(envFile, 0o600);
  }
  const state: FleetState = { mode: useTmux ? "tmux" : "process", tmux_socket: useTmux ? socket : null, started_at: new Date().toISOString(), workers: [] };
  for (const m of members) {
    const dir = join(root, m.name);
    mkdirSync(dir, { recursive: true });
    const pidFile = join(fleetDir, `${m.name}.pid`);
    const log = join(fleetDir, `${m.name}.log`);
    rmSync(pidFile, { force: true });
    const args = [...o.cli, "worker", "--role", m.role, "--name", m.name, "--dir", dir, "--pid-file", pidFile, ...(useTmux ? ["--fleet-env", envFile] : []), ...(o.workerArgs ?? []), "--", ...commandFor(o.config, m.role)];
    if (useTmux) {
      const session = sessionName(m.name);
      const r = tmux(socket, ["new-session", "-d", "-s", session, "-c", dir, ...args], o.env);
      if (r.status !== 0) throw new Error(`tmux new-session ${session} failed: ${r.stderr.trim()}`);
      // Keep a copy of the pane's output on disk too.
      tmux(socket, ["pipe-pane", "-o", "-t", session, `cat >> '${log.replace(/'/g, "'\\''")}'`], o.env);
      state.workers.push({ ...m, dir, pid_file: pidFile, log, session });
      out(`${m.name} (${m.role}): tmux session ${session}${socket ? ` (tmux -L ${socket})` : ""}; attach with tmux ${socket ? `-L ${socket} ` : ""}attach -t ${session}`);
    } else {
      const fd = openSync(log, "a");
      const [cmd, ...rest] = args as [string, ...string[]];
      const child = spawn(cmd, rest, { cwd: dir, env: o.env, detached: true, stdio: ["ignore", fd, fd] });
      if (child.pid !== undefined) writeFileSync(pidFile, `${child.pid}\n`);
      child.unref();
      state.workers.push({ ...m, dir, pid_file: pidFile, log, session: null });
      out(`${m.name} (${m.role}): pid ${child.pid}, output in ${log}`);
    }
    writeFileSync(stateFile(root), `${JSON.stringify(state, null, 2)}\n`);
  }
  return state;
}

/** Names of the fleet's workers whose process is alive. */
export function runningWorkers(root: string): string[] {
  const state = readState(resolve(root));
  if (!state) return [];
  return state.workers.filter((w) => alive(readPid(w.pid_file))).map((w) => w.name);
}

/**
 * The workers of a fleet just started that are gone already: their tmux session closed, or
 * (without tmux) their process ended. A tmux worker may not have written its pid file yet.
 */
export function exitedWorkers(root: string, env: NodeJS.ProcessEnv = process.env): Array<{ name: string; log: string }> {
  const state = readState(resolve(root));
  if (!state) return [];
  return state.workers
    .filter((w) => (w.session ? tmux(state.tmux_socket, ["has-session", "-t", `=${w.session}`], env).status !== 0 : !alive(readPid(w.pid_file))))
    .map((w) => ({ name: w.name, log: w.log }));
}

export interface StopOptions {
  root: string;
  /** How long the workers have to finish or release their tasks before SIGKILL (default 45 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  out?: (line: string) => void;
}

/**
 * SIGTERM to each worker (each lets its agent finish within its grace, or fails the task so it
 * is retried), waits for them, SIGKILLs what is left, and closes their tmux sessions.
 */
export async function stopFleet(o: StopOptions): Promise<{ stopped: string[]; killed: string[] }> {
  const out = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const env = o.env ?? process.env;
  const root = resolve(o.root);
  const state = readState(root);
  if (!state) throw new Error(`no fleet was started in ${root}`);
  const pids = new Map(state.workers.map((w) => [w.name, readPid(w.pid_file)]));
  const pidFiles = new Map(state.workers.map((w) => [w.name, w.pid_file]));
  for (const [name, pid] of pids) {
    if (pid !== null && alive(pid)) {
      process.kill(pid, "SIGTERM");
      out(`${name}: SIGTERM to ${pid}`);
    }
  }
  const until = Date.now() + (o.timeoutMs ?? 45_000);
  while ([...pids.values()].some(alive) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  const killed: string[] = [];
  for (const [name, pid] of pids) {
    if (pid !== null && alive(pid)) {
      process.kill(pid, "SIGKILL");
      killed.push(name);
      out(`${name}: did not stop in time; SIGKILL to ${pid}`);
      // Its agent runs in a group of its own, which the killed worker can no longer stop.
      const pidFile = pidFiles.get(name);
      const agent = pidFile ? readAgentPid(agentPidFileOf(pidFile)) : null;
      if (agent !== null) {
        try {
          process.kill(-agent, "SIGKILL");
          out(`${name}: SIGKILL to its agent's process group ${agent}`);
        } catch {
          // gone already
        }
      }
    }
  }
  for (const w of state.workers) {
    if (w.session && tmux(state.tmux_socket, ["has-session", "-t", `=${w.session}`], env).status === 0) tmux(state.tmux_socket, ["kill-session", "-t", `=${w.session}`], env);
    rmSync(w.pid_file, { force: true });
    rmSync(agentPidFileOf(w.pid_file), { force: true });
  }
  rmSync(join(root, ".fleet", "env.json"), { force: true });
  rmSync(stateFile(root), { force: true });
  return { stopped: state.workers.map((w) => w.name).filter((n) => !killed.includes(n)), killed };
}

function readState(root: string): FleetState | null {
  try {
    return JSON.parse(readFileSync(stateFile(root), "utf8")) as FleetState;
  } catch {
    return null;
  }
}

/** Where a worker with `--pid-file FILE` keeps its running agent's pid. */
export function agentPidFileOf(pidFile: string): string {
  return `${pidFile}.agent`;
}

/** The agent's pid (its group's id), if the file names a live process group. */
function readAgentPid(file: string): number | null {
  const pid = pidIn(file);
  if (pid === null || pid <= 1) return null;
  try {
    process.kill(-pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM" ? pid : null;
  }
}

/** The positive whole number a pid file holds, or null (no file, or not a pid). */
function pidIn(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** The pid in a worker's pid file, if that process is still that worker (pids get reused). */
function readPid(file: string): number | null {
  const pid = pidIn(file);
  if (pid === null) return null;
  try {
    // Linux: the worker was started with `--pid-file <file>`; another process is not ours.
    if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(file)) return null;
  } catch {
    // No /proc (macOS), or the process is gone: alive() tells.
  }
  return pid;
}

function alive(pid: number | null): boolean {
  if (pid === null) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Our environment, less what belongs to this terminal or shell rather than to the workers. */
function passedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const skip = /^(TMUX|TMUX_PANE|TERM|TERM_PROGRAM|TERM_PROGRAM_VERSION|COLORTERM|SHLVL|PWD|OLDPWD|_|INIT_CWD)$/;
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === "string" && !skip.test(e[0])));
}
