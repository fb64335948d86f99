import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, createTeam, eventually, json, sessionWithTopic, stepEvent } from "./helpers";

/** A request over the queue's message limit (120 KB inline): 100 alphas with 1.5 KB of note each. */
function bigRequest(sid: string, tid: string, prefix: string) {
  const note = "x".repeat(1500);
  return { events: Array.from({ length: 100 }, (_, i) => stepEvent(sid, tid, "alpha.registered", { alpha_id: `${prefix}${i}`, name: `${prefix} ${i}`, note })) };
}

describe("callbacks over the message limit", () => {
  it("keep two requests that share a client's X-Request-Id apart: both answered 202, both applied", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const requestId = `dup-${crypto.randomUUID()}`;
    const bodies = [bigRequest(sid, tid, "a"), bigRequest(sid, tid, "b")];
    const answers = await Promise.all(bodies.map((body) => call("/v1/callbacks", { method: "POST", key: team.api_key, headers: { "X-Request-Id": requestId }, json: body })));
    for (const res of answers) {
      expect(res.status).toBe(202);
      // The client's id is still the request's id (logs, the answer), just not the R2 key.
      expect(await json(res)).toEqual({ accepted: 100, request_id: requestId });
    }
    const ids = await eventually(
      async () => (await json(await call(`/v1/sessions/${sid}/alphas?limit=200`, { key: team.api_key }))).items.map((a: { id: string }) => a.id) as string[],
      (l) => l.length === 200,
      15_000,
    );
    const expected = bodies.flatMap((b) => b.events.map((e) => e.data.alpha_id as string)).sort();
    expect(ids.sort()).toEqual(expected);
    // Nothing was dead-lettered, and the stored requests were removed once applied.
    const dead = await json(await call("/v1/dead-letters", { key: team.api_key }));
    expect(dead.items).toEqual([]);
    await eventually(() => env.BUCKET.list({ prefix: `callback-requests/${team.team_id}/` }), (l) => l.objects.length === 0);
  });
});
