import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import worker from "../src/index";
import type { NotificationMessage } from "../src/notify/deliver";
import { queueRole } from "../src/queue/consumer";
import type { CallbackMessage } from "../src/queue/messages";
import { call, createTeam, eventually, json } from "./helpers";

// Outgoing deliveries have a queue of their own (switchboard-notifications), so a slow or dead
// receiver never holds up agents' callbacks. Deliveries still on the callbacks queue (queued
// before the change) are still sent: test/notify-concurrent.test.ts.

const RECEIVER = `http://127.0.0.1:${inject("receiverPort")}`;
const BASE = "https://switchboard.test";
const received = async (name: string): Promise<unknown[]> => (await fetch(`${RECEIVER}/received/${name}`)).json();

/** A queue binding that records the bodies sent through it, and sends them on. */
function recording(queue: Queue) {
  const bodies: unknown[] = [];
  const binding = new Proxy(queue, {
    get(target, prop) {
      if (prop === "send") return (body: unknown, options?: QueueSendOptions) => (bodies.push(body), target.send(body, options));
      if (prop === "sendBatch") return (messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
        const list = [...messages];
        bodies.push(...list.map((m) => m.body));
        return target.sendBatch(list, options);
      };
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { binding, bodies };
}

/** The Worker's env with both queue bindings recording. */
function recordingEnv() {
  const callbacks = recording(env.CALLBACKS);
  const notifications = recording(env.NOTIFICATIONS);
  return { env: { ...env, CALLBACKS: callbacks.binding, NOTIFICATIONS: notifications.binding } as Env, callbacks: callbacks.bodies, notifications: notifications.bodies };
}

async function channel(operator: string, url: string) {
  const res = await call("/v1/notifications", { method: "POST", key: operator, json: { url, format: "json", events: ["task.failed"] } });
  expect(res.status).toBe(201);
  return json(res);
}

async function deliveryRow(teamId: string, id: string) {
  return env.DB.prepare("SELECT status, attempts, last_status_code FROM notification_deliveries WHERE team_id = ? AND id = ?").bind(teamId, id).first();
}

const kinds = (bodies: unknown[]) => bodies.map((b) => (b as { kind: string }).kind);

describe("notifications have a queue of their own", () => {
  it("queues a test delivery on the notifications queue, none on the callbacks queue, and it arrives", async () => {
    const team = await createTeam();
    const name = `own-queue-${crypto.randomUUID()}`;
    const ch = await channel(team.api_key, `${RECEIVER}/hook/${name}`);
    const spied = recordingEnv();
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request(`${BASE}/v1/notifications/${ch.id}/test`, { method: "POST", headers: { Authorization: `Bearer ${team.api_key}` } }), spied.env, ctx);
    await waitOnExecutionContext(ctx);
    const text = await res.text();
    expect(res.status, text).toBeLessThan(300);
    const [row] = (await env.DB.prepare("SELECT id FROM notification_deliveries WHERE team_id = ? AND channel_id = ?").bind(team.team_id, ch.id).all<{ id: string }>()).results;
    expect(spied.notifications).toEqual([{ kind: "notification", team_id: team.team_id, delivery_id: row?.id }]);
    expect(kinds(spied.callbacks)).not.toContain("notification");
    // Through the real queue and its consumer, to the receiver.
    await eventually(() => received(name), (r) => r.length === 1);
    expect(await eventually(() => deliveryRow(team.team_id, row?.id ?? ""), (r) => r?.status === "delivered")).toMatchObject({ attempts: 1, last_status_code: 200 });
  });

  it("the cron queues a stalled delivery again on the notifications queue", async () => {
    const team = await createTeam();
    const ch = await channel(team.api_key, `${RECEIVER}/hook/stalled-${crypto.randomUUID()}`);
    const id = `ndl_${crypto.randomUUID().replace(/-/g, "")}`;
    const long = new Date(Date.now() - 60 * 60 * 1000).toISOString();
    const event = { id: `tev_${id}`, type: "task.failed", at: long, data: { task: { id: "task_s", title: "stalled", role: "executor", attempts: 1, max_attempts: 1 } } };
    await env.DB.prepare("INSERT INTO notification_deliveries (team_id, id, channel_id, event_id, event_type, event, status, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)")
      .bind(team.team_id, id, ch.id, event.id, event.type, JSON.stringify(event), long, long)
      .run();
    const spied = recordingEnv();
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *" }), spied.env, ctx);
    await waitOnExecutionContext(ctx);
    expect(spied.notifications).toContainEqual({ kind: "notification", team_id: team.team_id, delivery_id: id });
    expect(kinds(spied.callbacks)).not.toContain("notification");
    await eventually(() => deliveryRow(team.team_id, id), (r) => r?.status === "delivered");
  });

  it("delivers a batch from the notifications queue and acks it", async () => {
    const team = await createTeam();
    const name = `batch-${crypto.randomUUID()}`;
    const ch = await channel(team.api_key, `${RECEIVER}/hook/${name}`);
    const id = `ndl_${crypto.randomUUID().replace(/-/g, "")}`;
    const now = new Date().toISOString();
    const event = { id: `tev_${id}`, type: "task.failed", at: now, data: { task: { id: "task_b", title: "batched", role: "executor", attempts: 1, max_attempts: 1 } } };
    await env.DB.prepare("INSERT INTO notification_deliveries (team_id, id, channel_id, event_id, event_type, event, status, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)")
      .bind(team.team_id, id, ch.id, event.id, event.type, JSON.stringify(event), now, now)
      .run();
    const body: NotificationMessage = { kind: "notification", team_id: team.team_id, delivery_id: id };
    // A callback sent there by mistake is not applied by the notifications consumer: retried, it ends in the dead-letter queue.
    const stray: CallbackMessage = { kind: "callbacks", team_id: team.team_id, request_id: "r-stray", events: [] };
    const batch = createMessageBatch("switchboard-notifications", [body, stray].map((b, i) => ({ id: `msg-${crypto.randomUUID()}-${i}`, timestamp: new Date(), attempts: 1, body: b })));
    const ctx = createExecutionContext();
    await worker.queue(batch as MessageBatch<unknown>, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual([batch.messages[0]?.id]);
    expect(result.retryMessages.map((m) => m.msgId)).toEqual([batch.messages[1]?.id]);
    expect(await received(name)).toHaveLength(1);
    expect(await deliveryRow(team.team_id, id)).toEqual({ status: "delivered", attempts: 1, last_status_code: 200 });
  });

  it("keeps the notifications queue's dead letters in D1, under that queue's name", async () => {
    const team = await createTeam();
    const dead: NotificationMessage = { kind: "notification", team_id: team.team_id, delivery_id: "ndl_dead" };
    const batch = createMessageBatch("switchboard-notifications-dlq", [{ id: `msg-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body: dead }]);
    const ctx = createExecutionContext();
    await worker.queue(batch as MessageBatch<unknown>, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toHaveLength(1);
    const list = await json(await call("/v1/dead-letters", { key: team.api_key }));
    expect(list.items).toEqual([expect.objectContaining({ queue: "switchboard-notifications-dlq", attempts: 6, body: dead })]);
  });

  it("knows each queue by name, in production, [env.preview] and pull request previews", () => {
    for (const [queue, role] of [
      ["switchboard-callbacks", "callbacks"],
      ["switchboard-callbacks-dlq", "dead-letters"],
      ["switchboard-notifications", "notifications"],
      ["switchboard-notifications-dlq", "dead-letters"],
      ["switchboard-preview-callbacks", "callbacks"],
      ["switchboard-preview-notifications", "notifications"],
      ["switchboard-preview-notifications-dlq", "dead-letters"],
      ["switchboard-preview-callbacks-pr-42", "callbacks"],
      ["switchboard-preview-callbacks-dlq-pr-42", "dead-letters"],
      ["switchboard-preview-notifications-pr-42", "notifications"],
      ["switchboard-preview-notifications-dlq-pr-42", "dead-letters"],
    ] as const) {
      expect([queue, queueRole(queue)]).toEqual([queue, role]);
    }
  });
});
