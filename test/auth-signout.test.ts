import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../src/lib/crypto";
import { call, createKey, createTeam, drain, expectEnd, expectProblem, json, sessionWithTopic } from "./helpers";

// The sign-in cookie is signed and stateless ({team, key, epoch, exp}); clearing it in the
// browser alone would leave any copy of it valid for 12 hours. Signing out moves the key's
// session epoch on in D1, which authenticate compares on the key row it reads anyway.

const SAME_ORIGIN = { Origin: "https://switchboard.test" };

async function signIn(apiKey: string): Promise<string> {
  const res = await call("/v1/auth/session", { method: "POST", json: { api_key: apiKey } });
  expect(res.status).toBe(200);
  await res.body?.cancel();
  return (res.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
}

const withCookie = (cookie: string, init: RequestInit = {}) => ({ ...init, headers: { Cookie: cookie, ...SAME_ORIGIN, ...(init.headers as Record<string, string> | undefined) } });

async function streamToken(init: { key?: string; headers?: Record<string, string> }, path: string): Promise<string> {
  const res = await call("/v1/stream-tokens", { method: "POST", ...init, json: { path } });
  expect(res.status).toBe(201);
  return (await json<{ token: string }>(res)).token;
}

describe("DELETE /v1/auth/session revokes the cookie server-side", () => {
  it("a copy of the cookie kept from before sign-out is refused (401), and so are stream tokens it minted", async () => {
    const team = await createTeam();
    const viewer = await createKey(team.api_key, ["read"]);
    const cookie = await signIn(viewer);
    // Warm: this isolate's key cache now holds the key; sign-out must not be defeated by it.
    expect((await drain(await call("/v1/sessions", withCookie(cookie)))).status).toBe(200);
    const byCookie = await streamToken(withCookie(cookie), "/v1/stream");
    const byBearer = await streamToken({ key: viewer }, "/v1/stream");

    const out = await call("/v1/auth/session", withCookie(cookie, { method: "DELETE" }));
    expect(out.status).toBe(204);
    expect(await out.text()).toBe("");
    expect(out.headers.get("set-cookie")).toMatch(/^sb_session=;/);

    const problem = await expectProblem(await call("/v1/sessions", withCookie(cookie)), 401);
    expect(problem.detail).toContain("signed out");
    await expectProblem(await call(`/v1/stream?access_token=${encodeURIComponent(byCookie)}`), 401);
    // What the key does without the cookie goes on: the key itself, a token it minted.
    expect((await drain(await call("/v1/sessions", { key: viewer }))).status).toBe(200);
    expect((await drain(await call(`/v1/stream?access_token=${encodeURIComponent(byBearer)}`))).status).toBe(200);
    // Signing out again with the old cookie changes nothing; signing in again works.
    expect((await drain(await call("/v1/auth/session", withCookie(cookie, { method: "DELETE" })))).status).toBe(204);
    const again = await signIn(viewer);
    expect((await drain(await call("/v1/sessions", withCookie(again)))).status).toBe(200);
    await expectProblem(await call("/v1/sessions", withCookie(cookie)), 401);
  });

  it("ends the key's other browser sessions too, and no other key's", async () => {
    const team = await createTeam();
    const other = await createKey(team.api_key, ["read"]);
    const laptop = await signIn(team.api_key);
    const phone = await signIn(team.api_key);
    const otherCookie = await signIn(other);
    expect((await drain(await call("/v1/auth/session", withCookie(phone, { method: "DELETE" })))).status).toBe(204);
    await expectProblem(await call("/v1/sessions", withCookie(laptop)), 401);
    expect((await drain(await call("/v1/sessions", withCookie(otherCookie)))).status).toBe(200);
  });

  it("ends a stream opened with the cookie, and one opened with a token it minted", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const cookie = await signIn(team.api_key);
    const path = `/v1/sessions/${sid}/topics/${tid}/stream`;
    const token = await streamToken(withCookie(cookie), path);
    const byCookie = await call(path, withCookie(cookie));
    const byToken = await call(`${path}?access_token=${encodeURIComponent(token)}`);
    const byBearer = await call(path, { key: team.api_key });
    expect([byCookie.status, byToken.status, byBearer.status]).toEqual([200, 200, 200]);
    expect((await drain(await call("/v1/auth/session", withCookie(cookie, { method: "DELETE" })))).status).toBe(204);
    const [a, b] = await Promise.all([expectEnd(byCookie), expectEnd(byToken)]);
    expect(a).toContain("event: snapshot");
    expect(b).toContain("event: snapshot");
    await drain(byBearer);
  });

  it("a sign-out recorded by another isolate (D1 only, this isolate's cache untold) ends an open cookie stream", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    const cookie = await signIn(team.api_key);
    const stream = await call(`/v1/sessions/${sid}/stream`, withCookie(cookie));
    expect(stream.status).toBe(200);
    const keyId = (await json(await call("/v1/keys", { key: team.api_key }))).items[0].id as string;
    await env.DB.prepare("UPDATE api_keys SET session_epoch = session_epoch + 1 WHERE id = ?").bind(keyId).run();
    expect(await expectEnd(stream)).toContain("event: snapshot");
  });

  it("signing in again after a sign-out another isolate recorded works here at once, while the old cookie stays refused", async () => {
    const team = await createTeam();
    const viewer = await createKey(team.api_key, ["read"]);
    const before = await signIn(viewer);
    // Warm: this isolate's cache holds the key at epoch 0.
    expect((await drain(await call("/v1/sessions", withCookie(before)))).status).toBe(200);
    // Another isolate's sign-out: D1 only, this isolate's cache untold.
    const moved = await env.DB.prepare("UPDATE api_keys SET session_epoch = session_epoch + 1 WHERE hash = ?").bind(await sha256Hex(viewer)).run();
    expect(moved.meta.changes).toBe(1);
    const after = await signIn(viewer);
    expect((await drain(await call("/v1/sessions", withCookie(after)))).status).toBe(200);
    const token = await streamToken(withCookie(after), "/v1/stream");
    const stream = await call(`/v1/stream?access_token=${encodeURIComponent(token)}`);
    expect(stream.status).toBe(200);
    await stream.body?.cancel();
    expect((await expectProblem(await call("/v1/sessions", withCookie(before)), 401)).detail).toContain("signed out");
  });

  it("a sign-out from another origin is refused (403) and signs nothing out", async () => {
    const team = await createTeam();
    const cookie = await signIn(team.api_key);
    await expectProblem(await call("/v1/auth/session", { method: "DELETE", headers: { Cookie: cookie, Origin: "https://evil.example" } }), 403);
    expect((await drain(await call("/v1/sessions", withCookie(cookie)))).status).toBe(200);
    // Without a cookie there is nothing to revoke: it only clears.
    expect((await drain(await call("/v1/auth/session", { method: "DELETE" }))).status).toBe(204);
  });
});
