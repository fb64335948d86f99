import { Option } from "commander";
import { EVENT_TYPES, type EventType } from "../../src/domain/events";
import { SwitchboardClient } from "../client";
import { action, type CliCommand } from "../context";
import { UsageError } from "../errors";
import { agentClientOptions, agentFailure } from "./agent-client";

/** `switchboard emit`: one event from a shell script, through the agents' client (retries, sentinels). */
export const emitCommand: CliCommand = {
  name: "emit",
  register(program, ctx) {
    program
      .command("emit")
      .summary("send one event (agents)")
      .description(`Send one event to /v1/callbacks, with the agent client's retries and sentinel fallback.\nTypes: ${EVENT_TYPES.join(", ")}.`)
      .requiredOption("-s, --session <id>", "the session")
      .option("--topic <id>", "the topic (topic-level types)")
      .addOption(new Option("--type <type>", "the event type").choices(EVENT_TYPES).makeOptionMandatory())
      .option("--data <json>", "the event's data, a JSON object", "{}")
      .option("--id <id>", "the event id (the idempotency key); default: a fresh one")
      .action(
        action(ctx, async (opts: { session: string; topic?: string; type: EventType; data: string; id?: string }) => {
          let data: Record<string, unknown>;
          try {
            data = JSON.parse(opts.data) as Record<string, unknown>;
          } catch {
            throw new UsageError("--data is not JSON");
          }
          const client = new SwitchboardClient({ ...agentClientOptions(ctx.env), log: (l) => ctx.err(`[switchboard] ${l}\n`) });
          let result: Awaited<ReturnType<SwitchboardClient["send"]>>;
          try {
            result = await client.send({ id: opts.id ?? `emit-${crypto.randomUUID()}`, type: opts.type, session_id: opts.session, topic_id: opts.topic, data });
          } catch (error) {
            throw agentFailure(error, ctx.env);
          }
          ctx.out(`${JSON.stringify(result)}\n`);
          return 0;
        }),
      );
  },
};
