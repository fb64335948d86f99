import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sessionHub } from "../src/lib/hubs";
import { call, createSession, createTeam, expectProblem, json, summary, uid } from "./helpers";

describe("PATCH /v1/sessions/:sid refused with 409", () => {
  it("changes nothing: no rejected event is recorded, the status and reason stay", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const started = await call(`/v1/sessions/${sid}`, { method: "PATCH", key: team.api_key, json: { status: "running", reason: "by hand" } });
    expect(started.status).toBe(200);
    await started.json();
    const before = await summary(team.api_key, sid);

    // A running session cannot go back to created.
    const back = await expectProblem(await call(`/v1/sessions/${sid}`, { method: "PATCH", key: team.api_key, json: { status: "created" } }), 409);
    expect(back.detail).toContain("created");
    expect(await summary(team.api_key, sid)).toEqual(before);

    const ended = await call(`/v1/sessions/${sid}`, { method: "PATCH", key: team.api_key, json: { status: "completed" } });
    expect(ended.status).toBe(200);
    const after = await json(ended);
    // A terminal session refuses every change, the same status included.
    for (const status of ["running", "failed", "completed", "created"]) {
      await expectProblem(await call(`/v1/sessions/${sid}`, { method: "PATCH", key: team.api_key, json: { status, reason: "again" } }), 409);
    }
    const final = await summary(team.api_key, sid);
    expect(final).toEqual(after);
    expect(final.rejected_events).toEqual([]);
  });
});

describe("PATCH: the hub checks the change again as it applies it", () => {
  it("a session that an agent ended after the route read it refuses the operator's change without recording it", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const teamId = team.team_id;
    // The route read `created`, then an agent's event completed the session: what the hub sees.
    const hub = sessionHub(env, teamId, sid);
    const ended = await hub.apply([{ id: uid("e"), type: "update_status", session_id: sid, data: { status: "completed" } }]);
    expect(ended.results[0]?.status).toBe("applied");
    const op = (status: "running" | "failed") => ({ id: `operator:${crypto.randomUUID()}`, type: "update_status" as const, session_id: sid, occurred_at: new Date().toISOString(), data: { status } });
    expect(await hub.applyOperatorStatus(op("running"), "running")).toEqual({ refused: expect.stringContaining("completed") });
    expect(await hub.applyOperatorStatus(op("failed"), "failed")).toEqual({ refused: expect.stringContaining("terminal") });
    const s = await summary(team.api_key, sid);
    expect(s).toMatchObject({ status: "completed", rejected_events: [] });
    // A change the state machine allows is applied as an event.
    const sid2 = uid("s");
    await createSession(team.api_key, sid2);
    const report = await sessionHub(env, teamId, sid2).applyOperatorStatus({ ...op("running"), session_id: sid2 }, "running");
    expect("results" in report && report.results[0]?.status).toBe("applied");
  });
});
