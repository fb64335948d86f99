#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { version } from "../package.json";
import { addTaskCommand } from "./commands/add-task";
import { costsCommand } from "./commands/costs";
import { emitCommand } from "./commands/emit";
import { loginCommand } from "./commands/login";
import { logsCommand } from "./commands/logs";
import { respondCommand } from "./commands/respond";
import { runCommand } from "./commands/run";
import { statusCommand } from "./commands/status";
import { taskCommand } from "./commands/task";
import { cancelCommand, retryCommand } from "./commands/task-actions";
import { tasksCommand } from "./commands/tasks";
import { workersCommand } from "./commands/workers";
import { argvCommand } from "./commands/argv-command";
import { startCommand, stopCommand, WORKER_USAGE, workerCommand } from "./worker/commands";
import { type CliCommand, type Context, createContext, type Io } from "./context";
import { CliError } from "./errors";

/**
 * Every command, each in its own module under cli/commands/, in the order `--help` lists them.
 * The worker daemon's commands (`worker`, `start`, `stop`) go here too: a module exporting a
 * `CliCommand` (`takesAgentCommand: true` for one that runs an agent given after `--`), or,
 * for a command that parses its own argv, `argvCommand({ name, summary, usage, run })`.
 */
export const COMMANDS: CliCommand[] = [
  // people
  loginCommand,
  statusCommand,
  tasksCommand,
  taskCommand,
  addTaskCommand,
  cancelCommand,
  retryCommand,
  respondCommand,
  logsCommand,
  workersCommand,
  costsCommand,
  // agents
  emitCommand,
  runCommand,
  // the worker daemon and the local fleet (cli/worker/)
  argvCommand({ name: "worker", summary: "claim tasks of a role and run an agent command on each", usage: WORKER_USAGE, run: workerCommand }),
  argvCommand({ name: "start", summary: "start the local fleet: a planner, N executors, a documentation worker", usage: WORKER_USAGE, run: startCommand }),
  argvCommand({ name: "stop", summary: "stop the local fleet", usage: WORKER_USAGE, run: stopCommand }),
];

const ENVIRONMENT = `
Configuration: \`switchboard login --url URL --key KEY\` stores both in
$XDG_CONFIG_HOME/switchboard/config.json (~/.config/switchboard/config.json);
SWITCHBOARD_URL and SWITCHBOARD_API_KEY override it. Agents also read
SWITCHBOARD_SIGNING_SECRET (whsec_…) and, for the sentinel fallback,
SWITCHBOARD_SENTINEL_ENDPOINT, _BUCKET, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY and
SWITCHBOARD_TEAM_ID. Rotation: AVAILABLE_TOKENS=1,2,3 with CLAUDE_OAUTH_TOKEN_{i}.

Exit codes: 0 ok, 1 failed (the API refused: 403 for a key without the
scope, 404, 409 for a task in the wrong state; or the network), 2 bad usage.
Colour only on a terminal, and never with NO_COLOR set.
`;

export function buildProgram(ctx: Context, commands: CliCommand[] = COMMANDS): Command {
  const program = new Command("switchboard")
    .description("Switchboard: tasks, workers and questions for people; events and step runs for agents")
    .version(version, "-V, --version")
    .exitOverride()
    .configureOutput({ writeOut: ctx.out, writeErr: ctx.err })
    .showHelpAfterError("(add --help for usage)")
    .addHelpText("after", ENVIRONMENT);
  // Subcommands copy these settings when they are created, so they come first.
  for (const command of commands) command.register(program, ctx);
  return program;
}

/** Runs the CLI and returns the exit code: 0 ok, 1 failed, 2 bad usage (130 for an interrupted run). */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env, io: Partial<Io> = {}, commands: CliCommand[] = COMMANDS): Promise<number> {
  const ctx = createContext(env, io);
  const program = buildProgram(ctx, commands);
  let args = argv;
  // For `run` (and the worker daemon), everything after the first `--` is the agent's command,
  // untouched: commander never sees it, so the agent's own flags cannot be taken for ours.
  const takes = commands.find((c) => c.name === argv[0])?.takesAgentCommand;
  const dashdash = argv.indexOf("--");
  if (takes && dashdash >= 0) {
    args = argv.slice(0, dashdash);
    ctx.agentCommand = argv.slice(dashdash + 1);
  }
  if (args.length === 0) {
    program.outputHelp({ error: true });
    return 2;
  }
  try {
    await program.parseAsync(args, { from: "user" });
    return ctx.exitCode;
  } catch (error) {
    return report(ctx, error);
  }
}

function report(ctx: Context, error: unknown): number {
  // Commander has printed its own message (or the help) already.
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
  const c = ctx.errColor;
  if (error instanceof CliError) {
    ctx.err(`${c.red("error:")} ${error.message}\n`);
    if (error.hint) ctx.err(`${c.dim("hint:")} ${error.hint}\n`);
    return error.exitCode;
  }
  ctx.err(`${c.red("error:")} ${error instanceof Error ? error.message : String(error)}\n`);
  return 1;
}
