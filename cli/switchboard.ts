#!/usr/bin/env node
import { parseArgs } from "node:util";
import { EVENT_TYPES, type EventType } from "../src/domain/events";
import { STEPS } from "../src/domain/steps";
import { SwitchboardClient, clientOptionsFromEnv } from "./client";
import { parseSteps, runSteps } from "./run";
import { renderSummary } from "./summary-table";
import { startCommand, stopCommand, WORKER_USAGE, workerCommand } from "./worker/commands";

const USAGE = `switchboard — the agents' side of Switchboard

  switchboard emit --session S [--topic T] --type TYPE [--data JSON] [--id ID]
      send one event (types: ${EVENT_TYPES.join(", ")})
  switchboard run --session S --topic T <step|all> [-t TURNS] -- <agent command …>
      run the agent for one step (${STEPS.join(", ")}) or all six in order
${WORKER_USAGE}

Environment: SWITCHBOARD_URL (default http://127.0.0.1:8787), SWITCHBOARD_API_KEY,
SWITCHBOARD_SIGNING_SECRET (whsec_…, signs callbacks and sentinels), and for the sentinel
fallback SWITCHBOARD_SENTINEL_ENDPOINT, _BUCKET, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY and
SWITCHBOARD_TEAM_ID. Rotation: AVAILABLE_TOKENS=1,2,3 with CLAUDE_OAUTH_TOKEN_{i}.
`;

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const fleetCommands: Record<string, typeof workerCommand> = { worker: workerCommand, start: startCommand, stop: stopCommand };
  const fleetCommand = fleetCommands[command];
  if (fleetCommand) {
    try {
      return await fleetCommand(rest, env);
    } catch (e) {
      // parseArgs refuses unknown options with a TypeError whose code says so.
      if (e instanceof Error && (e.name === "UsageError" || (e as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS"))) return usageError(e.message);
      throw e;
    }
  }
  const dashdash = rest.indexOf("--");
  const own = dashdash >= 0 ? rest.slice(0, dashdash) : rest;
  const agentCommand = dashdash >= 0 ? rest.slice(dashdash + 1) : [];
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(own);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  let client: SwitchboardClient;
  try {
    client = new SwitchboardClient({ ...clientOptionsFromEnv(env), log: (l) => process.stderr.write(`[switchboard] ${l}\n`) });
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }

  if (command === "emit") {
    if (!values.session || !values.type) return usageError("emit needs --session and --type");
    if (!(EVENT_TYPES as string[]).includes(values.type)) return usageError(`unknown type ${values.type}`);
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(values.data ?? "{}") as Record<string, unknown>;
    } catch {
      return usageError("--data is not JSON");
    }
    const result = await client.send({ id: values.id ?? `emit-${crypto.randomUUID()}`, type: values.type as EventType, session_id: values.session, topic_id: values.topic, data });
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  }

  if (command === "run") {
    const steps = positionals[0] ? parseSteps(positionals[0]) : null;
    if (!values.session || !values.topic || !steps) return usageError(`run needs --session, --topic and a step (${STEPS.join("|")}|all)`);
    if (agentCommand.length === 0) return usageError("run needs the agent command after --");
    const maxTurns = values.turns ? Number(values.turns) : undefined;
    if (maxTurns !== undefined && !(Number.isInteger(maxTurns) && maxTurns > 0)) return usageError("-t takes a positive whole number");
    const interrupt = new AbortController();
    const onSignal = () => interrupt.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      const outcomes = await runSteps(client, { sessionId: values.session, topicId: values.topic, steps, maxTurns, command: agentCommand, env, interrupt: interrupt.signal });
      process.stdout.write(`\n${renderSummary(outcomes)}\n`);
      if (interrupt.signal.aborted) return 130;
      return outcomes.every((o) => o.status === "completed") && outcomes.length === steps.length ? 0 : 1;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  }
  return usageError(`unknown command ${command}`);
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      session: { type: "string", short: "s" },
      topic: { type: "string" },
      type: { type: "string" },
      data: { type: "string" },
      id: { type: "string" },
      turns: { type: "string", short: "t" },
    },
  });
}

function usageError(message: string): number {
  process.stderr.write(`${message}\n\n${USAGE}`);
  return 2;
}
