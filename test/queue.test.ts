import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { dbOf } from "../src/db/client";
import { upsertSessionRow } from "../src/db/index-rows";
import worker from "../src/index";
import { topicHub } from "../src/lib/hubs";
import { applyCallbackMessage } from "../src/queue/consumer";
import type { CallbackMessage } from "../src/queue/messages";
import { call, createTeam, eventually, json, postEvents, sessionWithTopic, stepEvent, summary } from "./helpers";

async function runQueue(queue: string, bodies: unknown[], attempts = 1) {
  const batch = createMessageBatch(queue, bodies.map((body, i) => ({ id: `msg-${crypto.randomUUID()}-${i}`, timestamp: new Date(), attempts, body })));
  const ctx = createExecutionContext();
  await worker.queue(batch as MessageBatch<unknown>, env, ctx);
  return { batch, result: await getQueueResult(batch, ctx) };
}

describe("queue consumer", () => {
  it("acks applied messages one by one and retries a failing one with backoff", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    // A pointer to an object that is not JSON: applying it throws, so it must be retried.
    await env.BUCKET.put("callback-requests/broken.json", "not json");
    const good: CallbackMessage = { kind: "callbacks", team_id: team.team_id, request_id: "r1", events: [stepEvent(sid, tid, "step_started", { step: "design" }) as never] };
    const bad: CallbackMessage = { kind: "callbacks", team_id: team.team_id, request_id: "r2", r2_key: "callback-requests/broken.json" };
    const { batch, result } = await runQueue("switchboard-callbacks", [good, bad], 3);
    expect(result.explicitAcks).toEqual([batch.messages[0]?.id]);
    expect(result.retryMessages).toHaveLength(1);
    expect(result.retryMessages[0]?.msgId).toBe(batch.messages[1]?.id);
    const topic = await json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key: team.api_key }));
    expect(topic.steps.design.status).toBe("running");
  });

  it("passes an exponential backoff delay when it retries", async () => {
    // getQueueResult does not report delays, so this batch records the calls itself.
    await env.BUCKET.put("callback-requests/broken2.json", "not json");
    const delays: number[] = [];
    for (const attempts of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) {
      const message = { id: `m${attempts}`, timestamp: new Date(), attempts, body: { kind: "callbacks", team_id: "t", request_id: "r", r2_key: "callback-requests/broken2.json" }, ack: vi.fn(), retry: vi.fn() };
      await worker.queue({ queue: "switchboard-callbacks", messages: [message], ackAll: vi.fn(), retryAll: vi.fn() } as unknown as MessageBatch<unknown>, env, createExecutionContext());
      expect(message.ack).not.toHaveBeenCalled();
      delays.push((message.retry.mock.calls[0]?.[0] as { delaySeconds: number }).delaySeconds);
    }
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(1);
      expect(d).toBeLessThanOrEqual(Math.min(300, 2 ** Math.max(1, i + 1)));
    });
    // With full jitter the ceiling grows: later attempts may wait far longer than the first.
    expect(Math.max(...delays.slice(6))).toBeGreaterThan(2);
  });

  it("keeps dead-lettered messages in D1 and lists them for the team only", async () => {
    const team = await createTeam();
    const other = await createTeam();
    const body: CallbackMessage = { kind: "callbacks", team_id: team.team_id, request_id: "r-dead", events: [] };
    // The dead-letter queue hands a message over as its own first delivery (attempts 1); the
    // dead letter counts the tries on the callbacks queue: max_retries (5) + 1.
    const { result } = await runQueue("switchboard-callbacks-dlq", [body], 1);
    expect(result.explicitAcks).toHaveLength(1);
    const list = await json(await call("/v1/dead-letters", { key: team.api_key }));
    expect(list.items).toHaveLength(1);
    expect(list.items[0]).toMatchObject({ queue: "switchboard-callbacks-dlq", attempts: 6, body: { request_id: "r-dead" } });
    expect((await json(await call("/v1/dead-letters", { key: other.api_key }))).items).toEqual([]);
  });

  it("applies a redelivered message once and still heals the index", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const message: CallbackMessage = {
      kind: "callbacks",
      team_id: team.team_id,
      request_id: "r3",
      events: [stepEvent(sid, tid, "usage.reported", { step: "prep", tools: [{ name: "bash", calls: 2, duration_ms: 3, errors: 0 }] }) as never, { id: "st-1", type: "update_status", session_id: sid, data: { status: "running" } }],
    };
    await applyCallbackMessage(env, message);
    // Simulate a crash after the hub applied but before D1 was written: roll the index row back.
    await env.DB.prepare("UPDATE sessions SET status = 'created', version = 0 WHERE team_id = ? AND id = ?").bind(team.team_id, sid).run();
    await applyCallbackMessage(env, message);
    const counts = await topicHub(env, team.team_id, sid, tid).storageCounts();
    expect(counts.last_seq).toBe(1);
    const row = await env.DB.prepare("SELECT status FROM sessions WHERE team_id = ? AND id = ?").bind(team.team_id, sid).first<{ status: string }>();
    expect(row?.status).toBe("running");
    const topic = await json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key: team.api_key }));
    expect(topic.steps.prep.tools).toEqual([{ name: "bash", calls: 2, duration_ms: 3, errors: 0 }]);
  });

  it("never lets a stale index write overwrite a newer one", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    const s = await summary(team.api_key, sid);
    const db = dbOf(env);
    await upsertSessionRow(db, team.team_id, { ...s, status: "completed" }, 100);
    await upsertSessionRow(db, team.team_id, { ...s, status: "running" }, 99);
    const row = await env.DB.prepare("SELECT status, version FROM sessions WHERE team_id = ? AND id = ?").bind(team.team_id, sid).first();
    expect(row).toEqual({ status: "completed", version: 100 });
  });

  it("carries a request over the message limit through R2, applies it in order, and deletes the object", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const padding = "x".repeat(1500);
    const events = Array.from({ length: 100 }, (_, i) => stepEvent(sid, tid, "alpha.registered", { alpha_id: `a${i}`, name: `alpha ${i}`, note: padding }));
    // Subscribed before posting: the history kept in tests (20) is shorter than the batch.
    const topicSse = await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: team.api_key });
    const res = await postEvents(team.api_key, events);
    expect(res.status).toBe(202);
    const { request_id } = await json(res);
    const alphas = await eventually(async () => json(await call(`/v1/sessions/${sid}/alphas?limit=200`, { key: team.api_key })), (l) => l.items.length === 100);
    expect(alphas.items.map((a: any) => a.id).sort()).toEqual(events.map((e) => e.data.alpha_id).sort());
    const text = await readUntil(topicSse, "id: 100\n");
    const order = [...text.matchAll(/"alpha_id":"(a\d+)"/g)].map((m) => m[1]);
    expect(order).toEqual(events.map((e) => e.data.alpha_id));
    await eventually(() => env.BUCKET.head(`callback-requests/${team.team_id}/${request_id}.json`), (o) => o === null);
  });
});

async function readUntil(res: Response, marker: string): Promise<string> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  return text;
}
