import { describe, expect, it } from "vitest";
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
