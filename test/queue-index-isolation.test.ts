import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import type { CallbackMessage } from "../src/queue/messages";
import { call, createTeam, json, sessionWithTopic, stepEvent, uid } from "./helpers";

async function runBatch(bodies: CallbackMessage[]) {
  const batch = createMessageBatch("switchboard-callbacks", bodies.map((body, i) => ({ id: `msg-${crypto.randomUUID()}-${i}`, timestamp: new Date(), attempts: 1, body })));
  const ctx = createExecutionContext();
  await worker.queue(batch as MessageBatch<unknown>, env, ctx);
  return { batch, result: await getQueueResult(batch, ctx) };
}

const topicRow = (team: string, sid: string, tid: string) => env.DB.prepare("SELECT status, current_step FROM topics WHERE team_id = ? AND session_id = ? AND id = ?").bind(team, sid, tid).first();

describe("queue consumer: one request's index rows cannot fail another's", () => {
  it("a request whose row D1 refuses fails alone; the other team's request in the batch is indexed and acked", async () => {
    const a = await createTeam();
    const b = await createTeam();
    const sa = await sessionWithTopic(a.api_key);
    const sb = await sessionWithTopic(b.api_key);
    // A row D1 refuses whatever the code does: the stand-in for any poisoned row.
    const poison = uid("poison");
    await env.DB.prepare(`CREATE TRIGGER "refuse_${poison}" BEFORE INSERT ON alphas WHEN NEW.id = '${poison}' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END`).run();
    try {
      const bodies: CallbackMessage[] = [
        { kind: "callbacks", team_id: a.team_id, request_id: "ra", events: [stepEvent(sa.sid, sa.tid, "alpha.registered", { alpha_id: poison }) as never] },
        { kind: "callbacks", team_id: b.team_id, request_id: "rb", events: [stepEvent(sb.sid, sb.tid, "step_started", { step: "explore" }) as never] },
      ];
      const { batch, result } = await runBatch(bodies);
      const [ma, mb] = batch.messages.map((m) => m.id);
      expect(result.explicitAcks).toEqual([mb]);
      expect(result.retryMessages.map((m) => m.msgId)).toEqual([ma]);
      expect(await topicRow(b.team_id, sb.sid, sb.tid)).toEqual({ status: "running", current_step: "explore" });
    } finally {
      await env.DB.prepare(`DROP TRIGGER IF EXISTS "refuse_${poison}"`).run();
    }
  });

  it("indexes alphas named like Object.prototype's members, and acks their request", async () => {
    const a = await createTeam();
    const b = await createTeam();
    const sa = await sessionWithTopic(a.api_key);
    const sb = await sessionWithTopic(b.api_key);
    // Valid alpha ids (the routes' rule) that name Object.prototype's members.
    const names = ["constructor", "toString", "hasOwnProperty", "valueOf"];
    const bodies: CallbackMessage[] = [
      {
        kind: "callbacks",
        team_id: a.team_id,
        request_id: "ra",
        events: names.flatMap((n) => [stepEvent(sa.sid, sa.tid, "alpha.registered", { alpha_id: n, name: `named ${n}` }), stepEvent(sa.sid, sa.tid, "alpha.evaluated", { alpha_id: n, metrics: { sharpe: 1 }, passed: true })]) as never,
      },
      { kind: "callbacks", team_id: b.team_id, request_id: "rb", events: [stepEvent(sb.sid, sb.tid, "step_started", { step: "design" }) as never] },
    ];
    const { batch, result } = await runBatch(bodies);
    expect(result.explicitAcks.sort()).toEqual(batch.messages.map((m) => m.id).sort());
    expect(result.retryMessages).toEqual([]);
    const rows = await env.DB.prepare("SELECT id, name, passed FROM alphas WHERE team_id = ? AND session_id = ? ORDER BY id").bind(a.team_id, sa.sid).all();
    expect(rows.results).toEqual([...names].sort().map((n) => ({ id: n, name: `named ${n}`, passed: 1 })));
    expect(await topicRow(b.team_id, sb.sid, sb.tid)).toEqual({ status: "running", current_step: "design" });
    const topic = await json(await call(`/v1/sessions/${sa.sid}/topics/${sa.tid}`, { key: a.api_key }));
    expect(topic.alphas.map((x: { id: string }) => x.id).sort()).toEqual([...names].sort());
  });
});

describe("queue consumer: a topic's events write only the alpha rows they name", () => {
  it("a step event leaves the topic's alpha rows alone; an alpha event rewrites only its alpha", async () => {
    const a = await createTeam();
    const s = await sessionWithTopic(a.api_key);
    const msg = (events: unknown[]): CallbackMessage => ({ kind: "callbacks", team_id: a.team_id, request_id: uid("r"), events: events as never });
    await runBatch([msg(["a1", "a2", "a3"].map((id) => stepEvent(s.sid, s.tid, "alpha.registered", { alpha_id: id, name: id })))]);
    const versions = async () =>
      Object.fromEntries(((await env.DB.prepare("SELECT id, version FROM alphas WHERE team_id = ? AND session_id = ? ORDER BY id").bind(a.team_id, s.sid).all()).results as { id: string; version: number }[]).map((r) => [r.id, r.version]));
    const before = await versions();
    expect(Object.keys(before)).toEqual(["a1", "a2", "a3"]);

    const { result } = await runBatch([msg([stepEvent(s.sid, s.tid, "step_started", { step: "explore" })])]);
    expect(result.retryMessages).toEqual([]);
    expect(await topicRow(a.team_id, s.sid, s.tid)).toEqual({ status: "running", current_step: "explore" });
    expect(await versions()).toEqual(before);

    await runBatch([msg([stepEvent(s.sid, s.tid, "alpha.evaluated", { alpha_id: "a2", metrics: { sharpe: 1.2 }, passed: true })])]);
    const after = await versions();
    expect(after.a1).toBe(before.a1);
    expect(after.a3).toBe(before.a3);
    expect(after.a2).toBeGreaterThan(before.a2 as number);
    const row = await env.DB.prepare("SELECT passed FROM alphas WHERE team_id = ? AND session_id = ? AND id = 'a2'").bind(a.team_id, s.sid).first();
    expect(row).toEqual({ passed: 1 });
  });
});

describe("queue consumer: alpha rows lost for good are written again", () => {
  it("every 64 changes of a topic, all its alpha rows are written from the hub's state", async () => {
    const a = await createTeam();
    const s = await sessionWithTopic(a.api_key);
    const msg = (events: unknown[]): CallbackMessage => ({ kind: "callbacks", team_id: a.team_id, request_id: uid("r"), events: events as never });
    await runBatch([msg([stepEvent(s.sid, s.tid, "alpha.registered", { alpha_id: "kept", name: "kept" })])]);
    // As if its write had failed and its message been dead-lettered.
    await env.DB.prepare("DELETE FROM alphas WHERE team_id = ? AND session_id = ?").bind(a.team_id, s.sid).run();
    const row = () => env.DB.prepare("SELECT id, name FROM alphas WHERE team_id = ? AND session_id = ?").bind(a.team_id, s.sid).first();
    await runBatch([msg(Array.from({ length: 10 }, () => stepEvent(s.sid, s.tid, "usage.reported", { step: "explore", turns: 1 })))]);
    expect(await row()).toBeNull(); // not yet: only the alphas events name, between refreshes
    await runBatch([msg(Array.from({ length: 60 }, () => stepEvent(s.sid, s.tid, "usage.reported", { step: "explore", turns: 1 })))]);
    expect(await row()).toEqual({ id: "kept", name: "kept" });
  });
});
