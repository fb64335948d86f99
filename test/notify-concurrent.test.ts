import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import worker from "../src/index";
import type { NotificationMessage } from "../src/notify/deliver";
import type { CallbackMessage } from "../src/queue/messages";
import { call, createTeam, eventually, json, sessionWithTopic } from "./helpers";

const RECEIVER = `http://127.0.0.1:${inject("receiverPort")}`;
const received = async (name: string): Promise<unknown[]> => (await fetch(`${RECEIVER}/received/${name}`)).json();
const release = (name: string) => fetch(`${RECEIVER}/release/${name}`, { method: "POST" }).then((r) => r.json());

/** A pending delivery of a (made-up) task.failed event to a channel on `url`, as queueDeliveries makes them. */
async function pendingDelivery(operator: string, teamId: string, url: string): Promise<string> {
  const res = await call("/v1/notifications", { method: "POST", key: operator, json: { url, format: "slack", events: ["budget.reached"] } });
  expect(res.status).toBe(201);
  const channel = await json(res);
  const id = `ndl_${crypto.randomUUID().replace(/-/g, "")}`;
  const now = new Date().toISOString();
  const event = { id: `tev_${id}`, type: "task.failed", at: now, data: { task: { id: "task_x", title: "held one", role: "executor", attempts: 1, max_attempts: 1 } } };
  await env.DB.prepare("INSERT INTO notification_deliveries (team_id, id, channel_id, event_id, event_type, event, status, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)")
    .bind(teamId, id, channel.id, event.id, event.type, JSON.stringify(event), now, now)
    .run();
  return id;
}

describe("queue consumer: callbacks never wait for outgoing notifications", () => {
  it("applies a batch's callbacks, and sends its notifications side by side, while receivers hold their answers; acks all once they answer", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    const names = [`held-a-${crypto.randomUUID()}`, `held-b-${crypto.randomUUID()}`];
    const deliveryIds = [];
    for (const name of names) deliveryIds.push(await pendingDelivery(team.api_key, team.team_id, `${RECEIVER}/hook/${name}?hold=1`));
    const bodies: (NotificationMessage | CallbackMessage)[] = [
      // The notifications first: before the fix the consumer awaited each in turn before anything else.
      ...deliveryIds.map((id) => ({ kind: "notification" as const, team_id: team.team_id, delivery_id: id })),
      { kind: "callbacks", team_id: team.team_id, request_id: "r-status", events: [{ id: "s-running", type: "update_status", session_id: sid, data: { status: "running" } } as never] },
    ];
    const batch = createMessageBatch("switchboard-callbacks", bodies.map((body, i) => ({ id: `msg-${crypto.randomUUID()}-${i}`, timestamp: new Date(), attempts: 1, body })));
    const ctx = createExecutionContext();
    const handled = worker.queue(batch as MessageBatch<unknown>, env, ctx);
    try {
      // Both receivers have their request (sent side by side) and neither has answered...
      for (const name of names) await eventually(() => received(name), (r) => r.length === 1, 5_000);
      // ...and the callback is applied all the same (well within the 10 s delivery timeout).
      const session = await eventually(() => call(`/v1/sessions/${sid}`, { key: team.api_key }).then(json), (s) => s.status === "running", 5_000);
      expect(session.status).toBe("running");
      const rows = await env.DB.prepare("SELECT status, attempts FROM notification_deliveries WHERE id IN (?, ?)").bind(...deliveryIds).all();
      expect(rows.results).toEqual([{ status: "pending", attempts: 0 }, { status: "pending", attempts: 0 }]);
    } finally {
      for (const name of names) expect(await release(name)).toEqual({ released: 1 });
    }
    await handled;
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(batch.messages.map((m) => m.id).sort());
    expect(result.retryMessages).toEqual([]);
    const rows = await env.DB.prepare("SELECT status, attempts, last_status_code FROM notification_deliveries WHERE id IN (?, ?)").bind(...deliveryIds).all();
    expect(rows.results).toEqual([0, 1].map(() => ({ status: "delivered", attempts: 1, last_status_code: 200 })));
  });
});
