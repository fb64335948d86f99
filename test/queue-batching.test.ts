import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import type { CallbackMessage } from "../src/queue/messages";
import { call, createTeam, json, SseReader, sessionWithTopic, stepEvent } from "./helpers";

async function runBatch(bodies: CallbackMessage[]) {
  const batch = createMessageBatch("switchboard-callbacks", bodies.map((body, i) => ({ id: `msg-${crypto.randomUUID()}-${i}`, timestamp: new Date(), attempts: 1, body })));
  const ctx = createExecutionContext();
  await worker.queue(batch as MessageBatch<unknown>, env, ctx);
  return { batch, result: await getQueueResult(batch, ctx) };
}

const usage = (sid: string, tid: string, n: number) => stepEvent(sid, tid, "usage.reported", { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }], n }) as never;

describe("queue consumer: a batch applied together", () => {
  it("applies the requests of a batch to one topic in batch order and streams them in one write", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const sse = new SseReader(await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: team.api_key }));
    expect((await sse.nextEvent()).event).toBe("snapshot");
    const before = sse.raw.length;

    // Five requests of two events each, for one topic: the hub gets them in this order.
    const bodies: CallbackMessage[] = Array.from({ length: 5 }, (_, r) => ({ kind: "callbacks", team_id: team.team_id, request_id: `r${r}`, events: [usage(sid, tid, 2 * r), usage(sid, tid, 2 * r + 1)] }));
    const { batch, result } = await runBatch(bodies);
    expect(result.explicitAcks.sort()).toEqual(batch.messages.map((m) => m.id).sort());

    const got = [];
    for (let i = 0; i < 10; i++) got.push(await sse.nextEvent());
    expect(got.map((m) => m.id)).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
    expect(got.map((m) => JSON.parse(m.data).data.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Gathered by the hub: all ten arrived in a single chunk, not one write per event.
    expect(sse.raw.length - before).toBe(1);
    await sse.close();

    const topic = await json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key: team.api_key }));
    expect(topic.steps.explore.tools).toEqual([{ name: "bash", calls: 10, duration_ms: 10, errors: 0 }]);
  });

  it("indexes every session and topic a mixed batch touched, across teams", async () => {
    const a = await createTeam();
    const b = await createTeam();
    const sa = await sessionWithTopic(a.api_key);
    const sb = await sessionWithTopic(b.api_key);
    const bodies: CallbackMessage[] = [
      { kind: "callbacks", team_id: a.team_id, request_id: "ra", events: [{ id: "s-a", type: "update_status", session_id: sa.sid, data: { status: "running" } } as never, stepEvent(sa.sid, sa.tid, "step_started", { step: "design" }) as never] },
      { kind: "callbacks", team_id: b.team_id, request_id: "rb", events: [stepEvent(sb.sid, sb.tid, "step_started", { step: "prep" }) as never, { id: "t2-added", type: "topic_added", session_id: sb.sid, data: { topic_id: "t2" } } as never] },
    ];
    const { result } = await runBatch(bodies);
    expect(result.explicitAcks).toHaveLength(2);
    const rows = await env.DB.prepare("SELECT team_id, session_id, id, status, current_step FROM topics WHERE team_id IN (?, ?) ORDER BY team_id = ?, id").bind(a.team_id, b.team_id, b.team_id).all();
    expect(rows.results).toEqual([
      { team_id: a.team_id, session_id: sa.sid, id: sa.tid, status: "running", current_step: "design" },
      { team_id: b.team_id, session_id: sb.sid, id: sb.tid, status: "running", current_step: "prep" },
      { team_id: b.team_id, session_id: sb.sid, id: "t2", status: "created", current_step: null },
    ]);
    const session = await env.DB.prepare("SELECT status FROM sessions WHERE team_id = ? AND id = ?").bind(a.team_id, sa.sid).first();
    expect(session).toEqual({ status: "running" });
  });
});
