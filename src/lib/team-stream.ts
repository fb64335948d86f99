import type { TeamHub } from "../../durable-objects/team-hub";
import { newId } from "./crypto";
import { log } from "./log";
import { queueNotifications } from "../notify/deliver";
import type { TeamEvent, TeamEventType } from "../domain/team-events";

type TeamHubStub = Pick<TeamHub, "publish" | "subscriberCount" | "storageCounts" | "restart"> & { fetch(request: Request): Promise<Response> };

export function teamHub(env: Env, teamId: string): TeamHubStub {
  return env.TEAM_HUB.getByName(teamId) as unknown as TeamHubStub;
}

/** A queue message for a publication the hub could not take at once: the consumer retries it. */
export interface TeamEventsMessage {
  kind: "team-events";
  team_id: string;
  events: TeamEvent[];
}

export function teamEvent(type: TeamEventType, data: Record<string, unknown>, at = new Date().toISOString(), id = newId("tev")): TeamEvent {
  return { id, type, at, data };
}

/**
 * Sends events to the team's stream, and to the channels that want them (src/notify), after their change is in D1. Awaited, so a client that
 * made a change and then reads the stream finds it there. Should the hub not answer, the
 * events go to the queue, whose consumer retries them (the ids make that apply once); the
 * change itself stands whatever happens here, so this never throws.
 *
 * The hub is asked first, and the notifications are queued beside it rather than before it:
 * every moment between the commit and the hub's turn is one in which another request's later
 * write can reach the hub first. The hub drops what arrives late (records carry their row's
 * version: durable-objects/team-hub.ts), and a change so dropped is never told on the stream
 * (only the later state of its row is), so the gap is kept short.
 */
export async function publishTeamEvents(env: Env, teamId: string, events: TeamEvent[]): Promise<void> {
  if (events.length === 0) return;
  await Promise.all([publishToHub(env, teamId, events), queueNotifications(env, teamId, events)]);
}

async function publishToHub(env: Env, teamId: string, events: TeamEvent[]): Promise<void> {
  try {
    await teamHub(env, teamId).publish(teamId, events);
  } catch (error) {
    log("warn", "team stream publish failed; queued", { team_id: teamId, events: events.length, error: error instanceof Error ? error.message : String(error) });
    try {
      await env.CALLBACKS.send({ kind: "team-events", team_id: teamId, events } satisfies TeamEventsMessage);
    } catch (queueError) {
      log("error", "team events lost", { team_id: teamId, types: events.map((e) => e.type), error: queueError instanceof Error ? queueError.message : String(queueError) });
    }
  }
}
