import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { ROLE_PATTERN } from "../../src/domain/tasks";
import { loadConfig } from "../config";
import { CliError } from "../errors";
import { resolveAgentCommand } from "./agent-command";
import { WorkerApi } from "./api";
import { runDaemon } from "./daemon";
import { agentPidFileOf, commandFor, exitedWorkers, hostPart, loadFleetConfig, SUFFIX_PATTERN, startFleet, stopFleet } from "./fleet";

/** `switchboard worker|start|stop`: argument parsing and signals; the work is in daemon.ts and fleet.ts. */

export const WORKER_USAGE = `  switchboard worker --role ROLE [--name NAME] [--dir DIR] [--max-tasks N] [--poll-interval S]
                     [--grace S] [--lease-heartbeat S] [--question-poll S] [-- <agent command …>]
      claim tasks of ROLE one at a time and run the agent on each in DIR (default ./workers/NAME);
      the agent command defaults to the role's in switchboard.fleet.json, else \`claude -p\`;
      it is checked before the first claim (a relative path is taken from the current directory);
      with --max-tasks, exits 1 when no task completed and some failed or were lost
  switchboard start [--executors N] [--no-planner] [--suffix S] [--dir DIR] [--config FILE] [--grace S] [--poll-interval S]
      start the local fleet: planner-1-S, exec-1-S…exec-N-S (default 2), docs-1-S, where S is
      this host's name unless given (--suffix '' for none), each in DIR/<worker> (default
      ./workers), in tmux sessions switchboard-<worker> when tmux is installed
  switchboard stop [--dir DIR] [--timeout S]
      stop the fleet started from DIR: SIGTERM, wait (default 45 s), then SIGKILL`;

/**
 * Each option's sensible range, in seconds: 0 would poll or heartbeat in a busy loop, and a
 * lease heartbeat must come well inside the 15-minute lease it keeps.
 */
const RANGES: Record<string, [number, number]> = {
  "poll-interval": [0.1, 3600],
  "lease-heartbeat": [0.1, 300],
  "question-poll": [0.1, 3600],
  grace: [0, 3600],
  timeout: [0, 3600],
};

const seconds = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  const [min, max] = RANGES[name] ?? [0, 3600];
  if (v.trim() === "" || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} takes a number of seconds from ${min} to ${max} (not ${v})`);
  return Math.round(n * 1000);
};

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** As the rest of the CLI: SWITCHBOARD_URL / SWITCHBOARD_API_KEY, else what `switchboard login` stored. */
function credentials(env: NodeJS.ProcessEnv): { baseUrl: string; apiKey: string } {
  try {
    const { baseUrl, apiKey } = loadConfig(env);
    return { baseUrl, apiKey };
  } catch (error) {
    if (error instanceof CliError) throw new UsageError(error.hint ? `${error.message}; ${error.hint}` : error.message);
    throw error;
  }
}

/** The environment `start` wrote for a worker (`<dir>/.fleet/env.json`): names to strings. */
function readFleetEnv(file: string): Record<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`--fleet-env: cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || !Object.values(value).every((v) => typeof v === "string")) {
    throw new UsageError(`--fleet-env: ${file} is not a JSON object of strings`);
  }
  return value as Record<string, string>;
}

export async function workerCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const dashdash = argv.indexOf("--");
  const { values } = parseArgs({
    args: dashdash >= 0 ? argv.slice(0, dashdash) : argv,
    options: {
      role: { type: "string" },
      name: { type: "string" },
      dir: { type: "string" },
      "max-tasks": { type: "string" },
      "poll-interval": { type: "string" },
      grace: { type: "string" },
      "lease-heartbeat": { type: "string" },
      "question-poll": { type: "string" },
      config: { type: "string" },
      "pid-file": { type: "string" },
      // What `start` passes to a worker in tmux. Not `--env-file`: Node takes that for its own
      // option even after the script name, and dies before the CLI runs.
      "fleet-env": { type: "string" },
    },
  });
  if (values["fleet-env"]) env = { ...env, ...readFleetEnv(values["fleet-env"]) };
  const role = values.role;
  if (!role || !ROLE_PATTERN.test(role)) throw new UsageError("worker needs --role, a lowercase name such as executor");
  const name = values.name ?? `${role}-${hostPart()}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) throw new UsageError("--name: 1-128 letters, digits, '.', '_' or '-'");
  const maxTasks = values["max-tasks"] === undefined ? undefined : Number(values["max-tasks"]);
  if (maxTasks !== undefined && !(Number.isInteger(maxTasks) && maxTasks > 0)) throw new UsageError("--max-tasks takes a positive whole number");
  const given = dashdash >= 0 ? argv.slice(dashdash + 1) : commandFor(loadFleetConfig(values.config, process.cwd(), env).config, role);
  if (given.length === 0) throw new UsageError("the agent command after -- is empty");
  const dir = resolve(values.dir ?? `workers/${name}`);
  // Checked now, not by failing the role's tasks one after another: a relative path is taken
  // from here (the agent runs in `dir`), and the program must be there and executable.
  const command = resolveAgentCommand(given, process.cwd(), dir, env);
  const api = new WorkerApi({ ...credentials(env), log: (l) => process.stderr.write(`[switchboard] ${l}\n`) });

  // A tmux session closed under the worker leaves its terminal gone: writes fail with EIO.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  const pidFile = values["pid-file"] ? resolve(values["pid-file"]) : undefined;
  if (pidFile) writeFileSync(pidFile, `${process.pid}\n`);
  // First SIGTERM/SIGINT/SIGHUP: finish (within the grace) or give back the current task; a second: now.
  const stop = new AbortController();
  const stopNow = new AbortController();
  // After the second, the daemon cuts what it waits on short; should anything still hold it
  // (a planner's task creation, say), the process ends anyway.
  let backstop: NodeJS.Timeout | undefined;
  const onSignal = () => {
    if (!stop.signal.aborted) return stop.abort();
    if (stopNow.signal.aborted) return;
    stopNow.abort();
    backstop = setTimeout(() => {
      process.stderr.write("[switchboard] still stopping 10 s after the second signal; exiting\n");
      process.exit(1);
    }, 10_000);
    backstop.unref();
  };
  for (const s of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(s, onSignal);
  try {
    const summary = await runDaemon({
      api,
      name,
      role,
      dir,
      command,
      env,
      maxTasks,
      pollIntervalMs: seconds("poll-interval", values["poll-interval"]),
      graceMs: seconds("grace", values.grace),
      leaseHeartbeatMs: seconds("lease-heartbeat", values["lease-heartbeat"]),
      questionPollMs: seconds("question-poll", values["question-poll"]),
      stop: stop.signal,
      stopNow: stopNow.signal,
      ...(pidFile ? { agentPidFile: agentPidFileOf(pidFile) } : {}),
    });
    if (summary.fatal) {
      process.stderr.write(`switchboard: ${summary.fatal}\n`);
      return 1;
    }
    // A run of --max-tasks whose tasks all failed or were lost did not do its job (a task
    // given back because the worker was stopped is neither).
    return maxTasks !== undefined && summary.completed === 0 && summary.failed + summary.lost > 0 ? 1 : 0;
  } finally {
    clearTimeout(backstop);
    for (const s of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.off(s, onSignal);
    if (pidFile) rmSync(pidFile, { force: true });
  }
}

export async function startCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      executors: { type: "string", short: "n" },
      "no-planner": { type: "boolean" },
      suffix: { type: "string" },
      dir: { type: "string" },
      config: { type: "string" },
      grace: { type: "string" },
      "poll-interval": { type: "string" },
    },
  });
  const executors = values.executors === undefined ? 2 : Number(values.executors);
  if (!(Number.isInteger(executors) && executors >= 0 && executors <= 64)) throw new UsageError("--executors takes a whole number from 0 to 64");
  const suffix = values.suffix ?? hostPart();
  if (!SUFFIX_PATTERN.test(suffix)) throw new UsageError(`--suffix: up to 64 letters, digits, '_' or '-' (not ${JSON.stringify(suffix)})`);
  credentials(env); // fail here, not in every worker
  seconds("grace", values.grace);
  seconds("poll-interval", values["poll-interval"]);
  const { config, path } = loadFleetConfig(values.config, process.cwd(), env);
  process.stdout.write(`agent commands from ${path ?? "the defaults (claude -p)"}\n`);
  const script = process.argv[1];
  if (!script) throw new Error("cannot tell how this CLI was started");
  const tmuxMode = env.SWITCHBOARD_TMUX === "0" ? "never" : env.SWITCHBOARD_TMUX === "1" ? "always" : "auto";
  const root = values.dir ?? "workers";
  startFleet({
    root,
    executors,
    planner: !values["no-planner"],
    suffix,
    config,
    cli: [process.execPath, resolve(script)],
    env,
    tmux: tmuxMode,
    tmuxSocket: env.SWITCHBOARD_TMUX_SOCKET || undefined,
    workerArgs: [...(values.grace ? ["--grace", values.grace] : []), ...(values["poll-interval"] ? ["--poll-interval", values["poll-interval"]] : [])],
  });
  // A worker that cannot start (a refused key, a bad option) exits at once: say so now.
  await new Promise((r) => setTimeout(r, 1500));
  const dead = exitedWorkers(root, env);
  for (const w of dead) {
    const log = existsSync(w.log) ? readFileSync(w.log, "utf8").trim().split("\n").slice(-5).join("\n") : "";
    process.stderr.write(`${w.name} exited at once${log ? `:\n${log}` : ""}\n`);
  }
  return dead.length > 0 ? 1 : 0;
}

export async function stopCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { dir: { type: "string" }, timeout: { type: "string" } } });
  const { killed } = await stopFleet({ root: values.dir ?? "workers", timeoutMs: seconds("timeout", values.timeout), env });
  return killed.length > 0 ? 1 : 0;
}
