import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import worker from "../src/index";
import { MAX_DELIVERY_ATTEMPTS } from "../src/domain/notifications";
import type { NotificationMessage } from "../src/notify/deliver";
import { QUEUE_TRIES } from "../src/queue/consumer";
import type { CallbackMessage } from "../src/queue/messages";
import wranglerToml from "../wrangler.toml?raw";
import { call, createTeam, eventually, json } from "./helpers";

// Deliveries that cannot be sent must end: counted, `failed` with a reason, never re-queued
// past their attempts, and never dead-lettered again and again.

const RECEIVER = `http://127.0.0.1:${inject("receiverPort")}`;

async function channel(operator: string, url: string): Promise<{ id: string }> {
  const res = await call("/v1/notifications", { method: "POST", key: operator, json: { url, format: "json", events: ["task.failed"] } });
  expect(res.status).toBe(201);
  return json(res);
}

/** A pending delivery of a made-up task.failed event, as queueDeliveries makes them. */
async function pendingDelivery(teamId: string, channelId: string, opts: { attempts?: number; updatedAt?: string } = {}): Promise<string> {
  const id = `ndl_${crypto.randomUUID().replace(/-/g, "")}`;
  const now = new Date().toISOString();
  const event = { id: `tev_${id}`, type: "task.failed", at: now, data: { task: { id: "task_f", title: "failing", role: "executor", attempts: 1, max_attempts: 1 } } };
  await env.DB.prepare("INSERT INTO notification_deliveries (team_id, id, channel_id, event_id, event_type, event, status, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)")
    .bind(teamId, id, channelId, event.id, event.type, JSON.stringify(event), opts.attempts ?? 0, opts.updatedAt ?? now, opts.updatedAt ?? now)
    .run();
  return id;
}

async function deliveries(operator: string, channelId: string): Promise<{ id: string; status: string; attempts: number; last_error: string | null }[]> {
  return (await json(await call(`/v1/notifications/${channelId}/deliveries`, { key: operator }))).items;
}

const deadLetters = async (key: string): Promise<{ queue: string; attempts: number; body: unknown }[]> => (await json(await call("/v1/dead-letters", { key }))).items;

/** The Worker's env with the notifications queue recording what is sent through it (and sending it on). */
function recordingEnv() {
  const sent: unknown[] = [];
  const queue = env.NOTIFICATIONS;
  const binding = {
    send: (body: unknown, options?: QueueSendOptions) => (sent.push(body), queue.send(body, options)),
    sendBatch: (messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
      const list = [...messages];
      sent.push(...list.map((m) => m.body));
      return queue.sendBatch(list, options);
    },
  } as unknown as Queue;
  return { env: { ...env, NOTIFICATIONS: binding } as Env, sent };
}

describe("a delivery that cannot be sent ends", () => {
  it("whose channel URL no longer decrypts: each try is counted with a reason that names no URL, then it is failed, not dead-lettered", async () => {
    const team = await createTeam();
    const url = `${RECEIVER}/hook/undecryptable-${crypto.randomUUID()}`;
    const ch = await channel(team.api_key, url);
    // As after a SECRETS_KEY rotation, or a damaged row: the stored URL no longer decrypts.
    await env.DB.prepare("UPDATE notification_channels SET url = 'v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA' WHERE team_id = ? AND id = ?").bind(team.team_id, ch.id).run();
    const id = await pendingDelivery(team.team_id, ch.id);
    // Through the real notifications queue and its consumer.
    await env.NOTIFICATIONS.send({ kind: "notification", team_id: team.team_id, delivery_id: id } satisfies NotificationMessage);
    const [row] = await eventually(() => deliveries(team.api_key, ch.id), (items) => items[0]?.status !== "pending", 15_000);
    expect(row).toMatchObject({ id, status: "failed", attempts: MAX_DELIVERY_ATTEMPTS });
    expect(row?.last_error).toMatch(/URL could not be decrypted/);
    expect(row?.last_error).not.toContain("127.0.0.1");
    expect(await deadLetters(team.api_key)).toEqual([]);
  }, 20_000);

  it("whose row no longer reads (its event is not JSON): the consumer still counts each try, then fails it", async () => {
    const team = await createTeam();
    const ch = await channel(team.api_key, `${RECEIVER}/hook/damaged-${crypto.randomUUID()}`);
    const id = await pendingDelivery(team.team_id, ch.id);
    await env.DB.prepare("UPDATE notification_deliveries SET event = '{damaged' WHERE team_id = ? AND id = ?").bind(team.team_id, id).run();
    await env.NOTIFICATIONS.send({ kind: "notification", team_id: team.team_id, delivery_id: id } satisfies NotificationMessage);
    const row = await eventually(
      () => env.DB.prepare("SELECT status, attempts, last_error FROM notification_deliveries WHERE team_id = ? AND id = ?").bind(team.team_id, id).first<{ status: string; attempts: number; last_error: string }>(),
      (r) => r?.status !== "pending",
      15_000,
    );
    expect(row).toMatchObject({ status: "failed", attempts: MAX_DELIVERY_ATTEMPTS });
    expect(row?.last_error).toMatch(/failed before it was recorded \(SyntaxError\); gave up after 5 attempts/);
    expect(await deadLetters(team.api_key)).toEqual([]);
  }, 20_000);

  it("whose message was dead-lettered: the delivery is failed, saying so", async () => {
    const team = await createTeam();
    const ch = await channel(team.api_key, `${RECEIVER}/hook/dead-${crypto.randomUUID()}`);
    const id = await pendingDelivery(team.team_id, ch.id, { attempts: 2 });
    const body: NotificationMessage = { kind: "notification", team_id: team.team_id, delivery_id: id };
    // As the dead-letter queue hands it over: its own first delivery.
    const batch = createMessageBatch("switchboard-notifications-dlq", [{ id: `msg-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body }]);
    const ctx = createExecutionContext();
    await worker.queue(batch as MessageBatch<unknown>, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toHaveLength(1);
    const [row] = await deliveries(team.api_key, ch.id);
    expect(row).toMatchObject({ id, status: "failed", attempts: 2 });
    expect(row?.last_error).toMatch(/dead-letter/);
  });

  it("the cron fails a stalled delivery whose tries are used up instead of queueing it again, and still queues one with tries left", async () => {
    const team = await createTeam();
    const ch = await channel(team.api_key, `${RECEIVER}/hook/stalled-${crypto.randomUUID()}`);
    const long = new Date(Date.now() - 60 * 60 * 1000).toISOString();
    const spent = await pendingDelivery(team.team_id, ch.id, { attempts: MAX_DELIVERY_ATTEMPTS, updatedAt: long });
    const left = await pendingDelivery(team.team_id, ch.id, { attempts: 1, updatedAt: long });
    const spied = recordingEnv();
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *" }), spied.env, ctx);
    await waitOnExecutionContext(ctx);
    const ids = spied.sent.map((b) => (b as NotificationMessage).delivery_id);
    expect(ids).toContain(left);
    expect(ids).not.toContain(spent);
    const rows = await deliveries(team.api_key, ch.id);
    expect(rows.find((r) => r.id === spent)).toMatchObject({ status: "failed", attempts: MAX_DELIVERY_ATTEMPTS });
    expect(rows.find((r) => r.id === spent)?.last_error).toMatch(/gave up after 5 attempts/);
  });
});

describe("a delivery while SECRETS_KEY is unusable waits for the key", () => {
  it("is neither tried nor counted: acked and left pending for the cron, then sent once the key is back", async () => {
    const team = await createTeam();
    const path = `/hook/keyless-${crypto.randomUUID()}`;
    const ch = await channel(team.api_key, `${RECEIVER}${path}`);
    const id = await pendingDelivery(team.team_id, ch.id, { attempts: MAX_DELIVERY_ATTEMPTS - 1 });
    const body: NotificationMessage = { kind: "notification", team_id: team.team_id, delivery_id: id };
    for (const secretsKey of [undefined, "short"]) {
      const batch = createMessageBatch("switchboard-notifications", [{ id: `msg-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body }]);
      const ctx = createExecutionContext();
      await worker.queue(batch as MessageBatch<unknown>, { ...env, SECRETS_KEY: secretsKey } as Env, ctx);
      const result = await getQueueResult(batch, ctx);
      expect(result.explicitAcks).toHaveLength(1);
      expect(result.retryMessages).toHaveLength(0);
      const [row] = await deliveries(team.api_key, ch.id);
      expect(row).toMatchObject({ id, status: "pending", attempts: MAX_DELIVERY_ATTEMPTS - 1, last_error: null });
    }
    // The key back: its last try is made and delivered.
    const batch = createMessageBatch("switchboard-notifications", [{ id: `msg-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body }]);
    const ctx = createExecutionContext();
    await worker.queue(batch as MessageBatch<unknown>, env, ctx);
    await getQueueResult(batch, ctx);
    const [row] = await deliveries(team.api_key, ch.id);
    expect(row).toMatchObject({ id, status: "delivered", attempts: MAX_DELIVERY_ATTEMPTS });
  });
});

describe("dead letters", () => {
  it("count the tries on the queue they failed on, not the dead-letter queue's own", async () => {
    const team = await createTeam();
    const stray: CallbackMessage = { kind: "callbacks", team_id: team.team_id, request_id: `r-stray-${crypto.randomUUID()}`, events: [] };
    // Not something the notifications consumer takes: retried through the real queue until it is dead-lettered.
    await env.NOTIFICATIONS.send(stray);
    const [dead] = await eventually(() => deadLetters(team.api_key), (items) => items.length > 0, 15_000);
    // max_retries = 5 (wrangler.toml): the first try and five retries.
    expect(dead).toMatchObject({ queue: "switchboard-notifications-dlq", attempts: 6, body: stray });
  }, 20_000);

  it("QUEUE_TRIES is what wrangler.toml gives every queue: max_retries + 1", () => {
    const retries = [...wranglerToml.matchAll(/^max_retries = (\d+)$/gm)].map((m) => Number(m[1]));
    expect(retries.length).toBeGreaterThan(0);
    for (const r of retries) expect(r + 1).toBe(QUEUE_TRIES);
  });
});
