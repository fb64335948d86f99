import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { signPayload } from "../src/lib/standard-webhooks";
import { call, createSession, createTeam, expectProblem, newSigningSecret, uid } from "./helpers";

/**
 * A webhook-id is recorded only once its request is accepted: Standard Webhooks senders resend
 * a refused delivery with the same id, and only a replay of an accepted one is refused.
 */

async function signedRequest(key: string, secret: string, body: unknown, id = `msg_${uid()}`) {
  const raw = JSON.stringify(body);
  const ts = Math.floor(Date.now() / 1000);
  const headers = { "Content-Type": "application/json", "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": await signPayload(secret, id, ts, raw) };
  // The same bytes and headers each time: what a Standard Webhooks sender resends.
  return () => call("/v1/callbacks", { method: "POST", key, headers, body: raw });
}

async function teamWithSecret() {
  const team = await createTeam();
  const secret = newSigningSecret();
  const res = await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: secret } });
  expect(res.status).toBe(200);
  await res.json();
  return { team, secret };
}

describe("webhook-ids", () => {
  it("are used only by an accepted request: a 404 may be resent with the same id once the session exists, then it is a replay", async () => {
    const { team, secret } = await teamWithSecret();
    const sid = uid("s");
    const send = await signedRequest(team.api_key, secret, { id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } });
    await expectProblem(await send(), 404);
    await createSession(team.api_key, sid);
    const accepted = await send();
    expect(accepted.status).toBe(202);
    await accepted.json();
    const replay = await expectProblem(await send(), 401);
    expect(replay.detail).toContain("replayed");
  });

  it("are not used by a request refused as invalid", async () => {
    const { team, secret } = await teamWithSecret();
    const send = await signedRequest(team.api_key, secret, { id: uid("e"), type: "no_such_type", session_id: "s" });
    await expectProblem(await send(), 400);
    const again = await expectProblem(await send(), 400);
    expect(again.detail).not.toContain("replayed");
  });

  it("let one of several concurrent deliveries of the same request through", async () => {
    const { team, secret } = await teamWithSecret();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const send = await signedRequest(team.api_key, secret, { id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } });
    const answers = await Promise.all(Array.from({ length: 6 }, () => send()));
    const statuses = await Promise.all(answers.map(async (r) => (await r.text(), r.status)));
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
  });
});

describe("a webhook-id of a request the queue did not take", () => {
  it("is released, so the sender's retry is accepted", async () => {
    const { team, secret } = await teamWithSecret();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const raw = JSON.stringify({ id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } });
    const id = `msg_${uid()}`;
    const ts = Math.floor(Date.now() / 1000);
    const headers = { Authorization: `Bearer ${team.api_key}`, "Content-Type": "application/json", "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": await signPayload(secret, id, ts, raw) };
    // The same Worker with a queue that refuses the send (as Queues does when it is down).
    const failingQueue = { send: async () => Promise.reject(new Error("queue down")), sendBatch: async () => Promise.reject(new Error("queue down")) };
    const failed = await createApp().request("https://switchboard.test/v1/callbacks", { method: "POST", headers, body: raw }, { ...env, CALLBACKS: failingQueue });
    expect(failed.status).toBe(500);
    await failed.text();
    const retried = await call("/v1/callbacks", { method: "POST", headers, body: raw });
    expect(retried.status).toBe(202);
    await retried.json();
    await expectProblem(await call("/v1/callbacks", { method: "POST", headers, body: raw }), 401);
  });
});
