import { action, type CliCommand } from "../context";
import { UsageError } from "../errors";

export interface ArgvCommandSpec {
  name: string;
  /** One line for `switchboard --help`. */
  summary: string;
  /** Printed for `switchboard NAME --help`. */
  usage: string;
  /** Parses its own arguments (everything after the name, `--` and the agent command included) and returns the exit code. */
  run(argv: string[], env: NodeJS.ProcessEnv): Promise<number>;
}

/**
 * A command that parses its own arguments (with node:util parseArgs, say), listed in the help
 * like the others. Its own usage errors — an error named `UsageError`, or parseArgs'
 * `ERR_PARSE_ARGS_*` — exit 2 like commander's.
 *
 * @example argvCommand({ name: "worker", summary: "run an agent on each task of a role", usage: WORKER_USAGE, run: workerCommand })
 */
export function argvCommand(spec: ArgvCommandSpec): CliCommand {
  return {
    name: spec.name,
    takesAgentCommand: true,
    register(program, ctx) {
      program
        .command(spec.name)
        .summary(spec.summary)
        .helpOption(false)
        .allowUnknownOption()
        .allowExcessArguments()
        .argument("[args...]")
        .action(
          action(ctx, async (args: string[]) => {
            if (args.includes("--help") || args.includes("-h")) {
              ctx.out(`${spec.usage}\n`);
              return 0;
            }
            const argv = ctx.agentCommand === null ? args : [...args, "--", ...ctx.agentCommand];
            try {
              return await spec.run(argv, ctx.env);
            } catch (e) {
              if (e instanceof Error && (e.name === "UsageError" || (e as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS"))) throw new UsageError(e.message, `switchboard ${spec.name} --help`);
              throw e;
            }
          }),
        );
    },
  };
}
