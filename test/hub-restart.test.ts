import { describe, expect, it } from "vitest";
import { ADMIN, call, createTeam, eventually, expectProblem, json, postEvents, SseReader, sessionWithTopic, stepEvent, waitForTopicSeq } from "./helpers";

const restart = (teamId: string, body: unknown, key = ADMIN) => call(`/v1/admin/teams/${teamId}/hubs/restart`, { method: "POST", key, json: body });

describe("restarting hubs as a deploy does", () => {
  it("drops the streams, keeps the state, and a stream resumed by Last-Event-ID misses nothing", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    await postEvents(team.api_key, [stepEvent(sid, tid, "step_started", { step: "design" })]).then((r) => r.json());
    await waitForTopicSeq(team.api_key, sid, tid, (t) => t.steps.design.status === "running");

    const sse = new SseReader(await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: team.api_key }));
    const snapshot = await sse.nextEvent();
    expect(snapshot).toMatchObject({ event: "snapshot", id: "1" });

    const res = await restart(team.team_id, { session_id: sid, topic_id: tid });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ restarted: [`session ${sid}`, `topic ${tid}`] });
    // The open stream ends with the object it came from.
    await expect(sse.nextEvent(3000)).rejects.toThrow(/stream ended|network|aborted|restarted/i);

    // Events keep coming while no one watches; the state survived the restart.
    await postEvents(team.api_key, [stepEvent(sid, tid, "step_completed", { step: "design", turns: 3 }), stepEvent(sid, tid, "step_started", { step: "prep" })]).then((r) => r.json());
    const topic = await waitForTopicSeq(team.api_key, sid, tid, (t) => t.steps.prep.status === "running");
    expect(topic.steps.design).toMatchObject({ status: "completed", turns: 3 });

    const resumed = new SseReader(await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: team.api_key, headers: { "Last-Event-ID": "1" } }));
    const replay = [await resumed.nextEvent(), await resumed.nextEvent()];
    expect(replay.map((m) => [m.id, m.event])).toEqual([
      ["2", "step_completed"],
      ["3", "step_started"],
    ]);
    await resumed.close();
  });

  it("needs the admin token and answers 404 for a hub that does not exist", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    await expectProblem(await restart(team.team_id, { session_id: sid }, team.api_key), 401);
    await expectProblem(await restart(team.team_id, { session_id: "nope" }), 404);
    await expectProblem(await restart(team.team_id, { session_id: sid, topic_id: "nope" }), 404);
    await expectProblem(await restart("team_other", { session_id: sid }), 404);
    await expectProblem(await restart(team.team_id, { session_id: "bad id" }), 400);
  });
});

const hubStatus = (teamId: string, query: string, key = ADMIN) => call(`/v1/admin/teams/${teamId}/hubs?${query}`, { key });

describe("a hub's status for operators", () => {
  it("shows the open streams, letting go of those whose clients left, and what the hub keeps", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    await postEvents(team.api_key, [stepEvent(sid, tid, "step_started", { step: "design" })]).then((r) => r.json());
    await waitForTopicSeq(team.api_key, sid, tid, (t) => t.steps.design.status === "running");
    const streams = [new SseReader(await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: team.api_key })), new SseReader(await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: team.api_key }))];
    for (const s of streams) await s.nextEvent();

    const topicOf = async () => (await json(await hubStatus(team.team_id, `session_id=${sid}&topic_id=${tid}`))).hubs[1];
    const body = await json(await hubStatus(team.team_id, `session_id=${sid}&topic_id=${tid}`));
    expect(body.hubs[0]).toMatchObject({ hub: `session ${sid}`, streams: 0 });
    expect(body.hubs[1]).toEqual({ hub: `topic ${tid}`, streams: 2, events: 1, applied_ids: 1, last_seq: 1 });

    await (streams[0] as SseReader).close();
    expect((await eventually(topicOf, (h) => h.streams === 1)).streams).toBe(1);
    await (streams[1] as SseReader).close();
    expect((await eventually(topicOf, (h) => h.streams === 0)).streams).toBe(0);
  });

  it("needs the admin token and answers 404 for a hub that does not exist", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    await expectProblem(await hubStatus(team.team_id, `session_id=${sid}`, team.api_key), 401);
    await expectProblem(await hubStatus(team.team_id, "session_id=nope"), 404);
    await expectProblem(await hubStatus(team.team_id, `session_id=${sid}&topic_id=nope`), 404);
    await expectProblem(await hubStatus("team_other", `session_id=${sid}`), 404);
    await expectProblem(await hubStatus(team.team_id, ""), 400);
  });
});
