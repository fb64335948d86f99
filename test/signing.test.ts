import { describe, expect, it } from "vitest";
import { signPayload, verifyPayload } from "../src/lib/standard-webhooks";
import { call, createSession, createTeam, eventually, json, summary, uid } from "./helpers";

function newSecret(): string {
  return `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
}

async function signedPost(key: string, secret: string, body: unknown, opts: { id?: string; ts?: number; tamper?: boolean } = {}) {
  const raw = JSON.stringify(body);
  const id = opts.id ?? `msg_${uid()}`;
  const ts = opts.ts ?? Math.floor(Date.now() / 1000);
  const signature = await signPayload(secret, id, ts, raw);
  return call("/v1/callbacks", {
    method: "POST",
    key,
    headers: { "Content-Type": "application/json", "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": signature },
    body: opts.tamper ? raw.replace("running", "failed") : raw,
  });
}

describe("Standard Webhooks signatures", () => {
  it("verifies the reference shape: v1,<base64 HMAC-SHA256 of id.timestamp.body>", async () => {
    const secret = newSecret();
    const sig = await signPayload(secret, "msg_1", 1700000000, "{}");
    expect(sig).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(await verifyPayload(secret, { id: "msg_1", timestamp: "1700000000", signature: `v1,bogus ${sig}` }, "{}", 1700000010)).toEqual({ ok: true });
    expect(await verifyPayload(secret, { id: "msg_1", timestamp: "1700000000", signature: sig }, "{}", 1700000000 + 301)).toEqual({ ok: false, reason: "expired" });
    expect(await verifyPayload(secret, { id: "msg_1", timestamp: "1700000000", signature: sig }, "{}", 1700000000 + 10_000, null)).toEqual({ ok: true });
    expect(await verifyPayload(newSecret(), { id: "msg_1", timestamp: "1700000000", signature: sig }, "{}", 1700000000)).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("with a signing secret, accepts signed callbacks and refuses unsigned, tampered, stale and replayed ones with 401", async () => {
    const team = await createTeam();
    const secret = newSecret();
    const patch = await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: secret } });
    expect(patch.status).toBe(200);
    await patch.json();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const event = { id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } };

    const unsigned = await call("/v1/callbacks", { method: "POST", key: team.api_key, json: event });
    expect(unsigned.status).toBe(401);
    expect((await json(unsigned)).detail).toContain("missing_headers");

    const tampered = await signedPost(team.api_key, secret, event, { tamper: true });
    expect(tampered.status).toBe(401);
    await tampered.json();

    const stale = await signedPost(team.api_key, secret, event, { ts: Math.floor(Date.now() / 1000) - 301 });
    expect(stale.status).toBe(401);
    expect((await json(stale)).detail).toContain("expired");

    const ok = await signedPost(team.api_key, secret, event, { id: "msg_once" });
    expect(ok.status).toBe(202);
    await ok.json();
    const replay = await signedPost(team.api_key, secret, event, { id: "msg_once" });
    expect(replay.status).toBe(401);
    expect((await json(replay)).detail).toContain("replayed");

    await eventually(() => summary(team.api_key, sid), (s) => s.status === "running");

    // Without the secret, unsigned callbacks are accepted again.
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: null } })).json();
    const plain = await call("/v1/callbacks", { method: "POST", key: team.api_key, json: { ...event, id: uid("e") } });
    expect(plain.status).toBe(202);
    await plain.json();
  });

  it("verifies the signature over the body's bytes as sent: a body starting with a UTF-8 BOM is accepted", async () => {
    const team = await createTeam();
    const secret = newSecret();
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: secret } })).json();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const event = { id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } };
    const text = new TextEncoder().encode(JSON.stringify(event));
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...text]);
    const id = `msg_${uid()}`;
    const ts = Math.floor(Date.now() / 1000);
    const headers = { "Content-Type": "application/json", "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": await signPayload(secret, id, ts, bytes) };
    // The signature over the bytes differs from one over the text without its BOM.
    expect(headers["webhook-signature"]).not.toBe(await signPayload(secret, id, ts, JSON.stringify(event)));
    expect(await verifyPayload(secret, { id, timestamp: String(ts), signature: headers["webhook-signature"] }, bytes, ts)).toEqual({ ok: true });
    const res = await call("/v1/callbacks", { method: "POST", key: team.api_key, headers, body: bytes });
    expect(res.status).toBe(202);
    await res.json();
    await eventually(() => summary(team.api_key, sid), (s) => s.status === "running");
    // Signed without the BOM but sent with it: not what was signed.
    const id2 = `msg_${uid()}`;
    const other = { ...headers, "webhook-id": id2, "webhook-signature": await signPayload(secret, id2, ts, JSON.stringify({ ...event, id: uid("e") })) };
    const bad = await call("/v1/callbacks", { method: "POST", key: team.api_key, headers: other, body: new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(JSON.stringify({ ...event, id: uid("e") }))]) });
    expect(bad.status).toBe(401);
    await bad.json();
  });

  it("refuses a signed callback that names an unknown session, and changes nothing", async () => {
    const team = await createTeam();
    const secret = newSecret();
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: secret } })).json();
    const res = await signedPost(team.api_key, secret, { id: uid("e"), type: "update_status", session_id: "nope", data: { status: "running" } });
    expect(res.status).toBe(404);
    expect(await json(res)).toMatchObject({ status: 404, title: "Not found" });
  });

  it("enforces a secret set after unsigned callbacks were accepted, at once", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const event = () => ({ id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } });
    const plain = await call("/v1/callbacks", { method: "POST", key: team.api_key, json: event() });
    expect(plain.status).toBe(202);
    await plain.json();
    const secret = newSecret();
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: secret } })).json();
    const unsigned = await call("/v1/callbacks", { method: "POST", key: team.api_key, json: event() });
    expect(unsigned.status).toBe(401);
    await unsigned.json();
    const signed = await signedPost(team.api_key, secret, event());
    expect(signed.status).toBe(202);
    await signed.json();
  });

  it("finds a session created after a callback named it while it did not exist", async () => {
    const team = await createTeam();
    const sid = uid("s");
    const event = () => ({ id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } });
    const early = await call("/v1/callbacks", { method: "POST", key: team.api_key, json: event() });
    expect(early.status).toBe(404);
    await early.json();
    await createSession(team.api_key, sid);
    const late = await call("/v1/callbacks", { method: "POST", key: team.api_key, json: event() });
    expect(late.status).toBe(202);
    await late.json();
  });
});
