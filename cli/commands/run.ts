import { STEPS } from "../../src/domain/steps";
import { SwitchboardClient } from "../client";
import { action, type CliCommand, interruption } from "../context";
import { UsageError } from "../errors";
import { positiveInt } from "../options";
import { parseSteps, runSteps } from "../run";
import { renderSummary } from "../summary-table";
import { agentClientOptions, agentFailure } from "./agent-client";

/** `switchboard run … -- <agent command>`: runs an agent through research steps, reporting each. */
export const runCommand: CliCommand = {
  name: "run",
  takesAgentCommand: true,
  register(program, ctx) {
    program
      .command("run")
      .summary("run an agent for a step, or all six (agents)")
      .description(`Run the agent command for one step (${STEPS.join(", ")}) or all six in order, reporting each step and printing the timing summary.`)
      .usage("--session S --topic T <step|all> [-t TURNS] -- <agent command …>")
      .argument("<step>", `${STEPS.join("|")}|all`)
      .requiredOption("-s, --session <id>", "the session")
      .requiredOption("--topic <id>", "the topic")
      .option("-t, --turns <n>", "override every step's turn budget", positiveInt(100_000))
      .action(
        action(ctx, async (stepArg: string, opts: { session: string; topic: string; turns?: number }) => {
          const steps = parseSteps(stepArg);
          if (!steps) throw new UsageError(`run needs a step: ${STEPS.join("|")}|all (not ${stepArg})`);
          const command = ctx.agentCommand ?? [];
          if (command.length === 0) throw new UsageError("run needs the agent command after --", "e.g. switchboard run --session s1 --topic t1 all -- claude -p \"$(cat prompt.md)\"");
          const client = new SwitchboardClient({ ...agentClientOptions(ctx.env), log: (l) => ctx.err(`[switchboard] ${l}\n`) });
          const logUploadMs = envMs(ctx.env, "SWITCHBOARD_LOG_UPLOAD_MS");
          const killGraceMs = envMs(ctx.env, "SWITCHBOARD_KILL_GRACE_MS");
          const stop = interruption({ repeat: true });
          try {
            const outcomes = await runSteps(client, { sessionId: opts.session, topicId: opts.topic, steps, maxTurns: opts.turns, command, env: ctx.env, logUploadMs, interrupt: stop.signal, killGraceMs, forceKill: stop.again, out: ctx.out, err: ctx.err });
            ctx.out(`\n${renderSummary(outcomes)}\n`);
            if (stop.signal.aborted) return stop.exitCode();
            return outcomes.every((o) => o.status === "completed") ? 0 : 1;
          } catch (error) {
            throw agentFailure(error, ctx.env);
          } finally {
            stop.dispose();
          }
        }),
      );
  },
};

/** A whole number of milliseconds from the environment, or undefined when unset; anything else is bad usage. */
function envMs(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const value = env[name];
  if (value === undefined || value === "") return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`${name} must be a whole number of milliseconds (not ${value})`);
  return Number(value);
}
