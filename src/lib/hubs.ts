import type { SessionHub } from "../../durable-objects/session-hub";
import type { TopicHub } from "../../durable-objects/topic-hub";

/**
 * Durable Object stubs by name; the team is part of every name, so no request reaches
 * another team's hub. Typed by the classes' own method signatures: the generated RPC
 * mapping recurses forever on the JSON metadata type (TS2589), and every method here
 * returns plain structured-cloneable data, so the two are the same.
 */
type Rpc<T, K extends keyof T> = Pick<T, K> & { fetch(request: Request): Promise<Response> };
export type SessionHubStub = Rpc<SessionHub, "summary" | "create" | "apply" | "applyOperatorStatus" | "recordRejected" | "subscriberCount" | "storageCounts" | "restart">;
export type TopicHubStub = Rpc<TopicHub, "summary" | "ensure" | "apply" | "subscriberCount" | "storageCounts" | "restart">;

export function sessionHub(env: Env, teamId: string, sessionId: string): SessionHubStub {
  return env.SESSION_HUB.getByName(`${teamId}:${sessionId}`) as unknown as SessionHubStub;
}

export function topicHub(env: Env, teamId: string, sessionId: string, topicId: string): TopicHubStub {
  return env.TOPIC_HUB.getByName(`${teamId}:${sessionId}:${topicId}`) as unknown as TopicHubStub;
}
