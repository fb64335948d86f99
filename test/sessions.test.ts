import { describe, expect, it } from "vitest";
import { SseReader, call, createSession, createTeam, eventually, json, postEvents, sessionWithTopic, stepEvent, summary, uid } from "./helpers";

describe("sessions: what works", () => {
  it("summarizes a session's life like the seed's timing summary", async () => {
    const team = await createTeam();
    const sid = uid("s");
    const created = await createSession(team.api_key, sid, { title: "Momentum study", metadata: { owner: "ana" } });
    expect(created).toMatchObject({ id: sid, status: "created", title: "Momentum study", metadata: { owner: "ana" }, topics: [], rejected_events: [] });
    const topicRes = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1", hypothesis: "h", max_turns: { explore: 30 } } });
    expect(await json(topicRes)).toMatchObject({ id: "t1", hypothesis: "h", steps: { explore: { max_turns: 30, status: "pending" } } });

    await (await postEvents(team.api_key, [
      { id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } },
      stepEvent(sid, "t1", "step_started", { step: "design" }),
      stepEvent(sid, "t1", "usage.reported", { step: "design", tools: [{ name: "bash", calls: 4, duration_ms: 900, errors: 1 }], turns: 6, cost_usd: 0.12 }),
      stepEvent(sid, "t1", "step_completed", { step: "design", turns: 9, cost_usd: 0.31, duration_ms: 65_000 }),
      stepEvent(sid, "t1", "step_started", { step: "prep", max_turns: 45 }),
      stepEvent(sid, "t1", "alpha.registered", { alpha_id: "a1", name: "mom", expression: "rank(ret_20)" }),
      stepEvent(sid, "t1", "alpha.evaluated", { alpha_id: "a1", metrics: { sharpe: 1.4, ic: 0.03 }, passed: true }),
    ])).json();

    const s = await eventually(() => summary(team.api_key, sid), (x) => x.status === "running" && x.topics[0]?.current_step === "prep" && x.topics[0]?.alphas.length === 1);
    expect(s.topics[0].steps.design).toEqual({
      status: "completed",
      turns: 9,
      max_turns: 15,
      cost_usd: 0.31,
      duration_ms: 65_000,
      tools: [{ name: "bash", calls: 4, duration_ms: 900, errors: 1 }],
      started_at: expect.any(String),
      ended_at: expect.any(String),
      error: null,
    });
    expect(s.topics[0].steps.prep).toMatchObject({ status: "running", max_turns: 45 });
    expect(s.topics[0].steps.explore).toMatchObject({ status: "pending", max_turns: 30 });

    const alphas = await json(await call(`/v1/sessions/${sid}/alphas`, { key: team.api_key }));
    expect(alphas).toEqual({ items: [expect.objectContaining({ id: "a1", topic_id: "t1", name: "mom", metrics: { sharpe: 1.4, ic: 0.03 }, passed: true })], next_cursor: null });
    expect((await json(await call(`/v1/sessions/${sid}/alphas?passed=false`, { key: team.api_key }))).items).toEqual([]);
  });

  it("lets an operator end a session by hand, broadcast on its stream; a terminal one is 409", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    const sse = new SseReader(await call(`/v1/sessions/${sid}/stream`, { key: team.api_key }));
    await sse.next();
    await sse.nextEvent();
    const res = await call(`/v1/sessions/${sid}`, { method: "PATCH", key: team.api_key, json: { status: "failed", reason: "stopped by hand" } });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ status: "failed", status_reason: "stopped by hand" });
    const event = await sse.nextEvent();
    expect(event.event).toBe("update_status");
    expect(JSON.parse(event.data).data).toEqual({ status: "failed", reason: "stopped by hand" });
    await sse.close();
    const again = await call(`/v1/sessions/${sid}`, { method: "PATCH", key: team.api_key, json: { status: "running" } });
    expect(again.status).toBe(409);
    expect(await json(again)).toMatchObject({ status: 409, detail: expect.stringContaining("failed") });
    const list = await json(await call("/v1/sessions?status=failed", { key: team.api_key }));
    expect(list.items.map((i: any) => i.id)).toEqual([sid]);
  });

  it("pages through sessions newest first with a cursor", async () => {
    const team = await createTeam();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(`p${i}`);
      await createSession(team.api_key, `p${i}`);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${cursor}` : "";
      const page = await json(await call(`/v1/sessions?limit=2${q}`, { key: team.api_key }));
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((s: any) => s.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
  });
});

describe("health and contract", () => {
  it("GET /healthz answers 200 when D1, R2, the queue and the hubs are usable and the secrets set", async () => {
    const res = await call("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, checks: { secrets: "ok", d1: "ok", r2: "ok", queue: "ok", durable_objects: "ok" } });
  });

  it("every response carries a request id, and errors repeat it", async () => {
    const res = await call("/v1/sessions");
    expect(res.status).toBe(401);
    const body = await json(res);
    expect(body.request_id).toBe(res.headers.get("x-request-id"));
    expect(res.headers.get("content-type")).toBe("application/problem+json");
  });
});
