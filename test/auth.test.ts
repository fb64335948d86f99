import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ApiKey, CreatedKey } from "../src/routes/keys";
import type { SessionResponse } from "../src/routes/schemas";
import type { Team } from "../src/routes/team";
import { ADMIN, call, createKey, createSession, createTeam, drain, eventually, expectProblem, json, newSigningSecret, postEvents, sessionWithTopic, sha256Hex, stepEvent, summary, uid } from "./helpers";

/** The `sb_session=…` pair and the attributes of a Set-Cookie header. */
function parseSetCookie(header: string | null) {
  expect(header).toEqual(expect.any(String));
  const [pair = "", ...attrs] = (header as string).split(";").map((p) => p.trim());
  const eq = pair.indexOf("=");
  return { name: pair.slice(0, eq), value: pair.slice(eq + 1), pair, attrs: attrs.map((a) => a.toLowerCase()) };
}

async function signIn(apiKey: string) {
  const res = await call("/v1/auth/session", { method: "POST", json: { api_key: apiKey } });
  expect(res.status).toBe(200);
  const cookie = parseSetCookie(res.headers.get("set-cookie"));
  return { res, body: await json<{ team_id: string; expires_at: string }>(res), cookie };
}

async function mintStreamToken(key: string, path: string) {
  const res = await call("/v1/stream-tokens", { method: "POST", key, json: { path } });
  expect(res.status).toBe(201);
  return json<{ token: string; expires_at: string }>(res);
}

describe("auth: who is refused (401)", () => {
  it("answers 401 problem+json without any credentials, on every kind of route", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const routes: [string, string, unknown?][] = [
      ["GET", "/v1/sessions"],
      ["POST", "/v1/sessions", { id: uid("s") }],
      ["GET", `/v1/sessions/${sid}`],
      ["PATCH", `/v1/sessions/${sid}`, { status: "failed" }],
      ["POST", `/v1/sessions/${sid}/topics`, { id: "t2" }],
      ["GET", `/v1/sessions/${sid}/topics/${tid}`],
      ["GET", `/v1/sessions/${sid}/alphas`],
      ["POST", "/v1/callbacks", { id: uid("e"), type: "update_status", session_id: sid, data: { status: "failed" } }],
      ["GET", `/v1/sessions/${sid}/stream`],
      ["GET", `/alpha/discovery/${sid}/${tid}/stream`],
      ["GET", "/v1/keys"],
      ["POST", "/v1/keys", { name: "x", scopes: ["operator"] }],
      ["GET", "/v1/team"],
      ["PATCH", "/v1/team", { name: "taken over" }],
      ["GET", "/v1/dead-letters"],
      ["POST", "/v1/stream-tokens", { path: `/v1/sessions/${sid}/stream` }],
      ["GET", "/v1/sentinels"],
      ["GET", "/v1/usage"],
    ];
    for (const [method, path, body] of routes) {
      const problem = await expectProblem(await call(path, { method, ...(body === undefined ? {} : { json: body }) }), 401);
      expect(problem.title, `${method} ${path}`).toBe("Unauthorized");
    }
    // Nothing went through.
    const s = await summary(team.api_key, sid);
    expect(s).toMatchObject({ status: "created" });
    expect(s.topics.map((t: { id: string }) => t.id)).toEqual([tid]);
    expect((await json<Team>(await call("/v1/team", { key: team.api_key }))).name).toBe("team");
  });

  it("answers 401 for a malformed Authorization header", async () => {
    const team = await createTeam();
    for (const value of ["Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", `Bearer ${team.api_key} extra`, team.api_key, `Token ${team.api_key}`, `Bearer:${team.api_key}`]) {
      const res = await call("/v1/sessions", { headers: { Authorization: value } });
      await expectProblem(res, 401);
    }
  });

  it("answers 401 for a wrong key, even one of the right shape", async () => {
    const team = await createTeam();
    const wrong = `sb_${"0".repeat(48)}`;
    await expectProblem(await call("/v1/sessions", { key: wrong }), 401);
    // One character off.
    const last = team.api_key.at(-1) === "0" ? "1" : "0";
    await expectProblem(await call("/v1/sessions", { key: `${team.api_key.slice(0, -1)}${last}` }), 401);
    // The stored hash is not a key.
    await expectProblem(await call("/v1/sessions", { key: await sha256Hex(team.api_key) }), 401);
  });

  it("answers 401 for a deleted key, and only that key stops working", async () => {
    const team = await createTeam();
    const created = await call("/v1/keys", { method: "POST", key: team.api_key, json: { name: "short-lived", scopes: ["agent"] } });
    expect(created.status).toBe(201);
    const key = await json<CreatedKey>(created);
    expect((await drain(await call("/v1/sessions", { key: key.key }))).status).toBe(200);

    const deleted = await call(`/v1/keys/${key.id}`, { method: "DELETE", key: team.api_key });
    expect(deleted.status).toBe(204);
    expect(await deleted.text()).toBe("");
    await expectProblem(await call("/v1/sessions", { key: key.key }), 401);
    await expectProblem(await call("/v1/sessions", { method: "POST", key: key.key, json: { id: uid("s") } }), 401);
    // Deleting it again: it is gone.
    await expectProblem(await call(`/v1/keys/${key.id}`, { method: "DELETE", key: team.api_key }), 404);
    const keys = await json(await call("/v1/keys", { key: team.api_key }));
    expect(keys.items.map((k: ApiKey) => k.id)).not.toContain(key.id);
    expect(keys.items).toHaveLength(1);
  });

  it("admin routes need ADMIN_TOKEN: none, a wrong one or an API key is 401", async () => {
    const team = await createTeam();
    for (const key of [undefined, "wrong-admin-token", `${ADMIN}x`, team.api_key]) {
      await expectProblem(await call("/v1/admin/teams", { method: "POST", ...(key ? { key } : {}), json: { name: "intruder" } }), 401);
      await expectProblem(await call(`/v1/admin/teams/${team.team_id}/keys`, { method: "POST", ...(key ? { key } : {}), json: { name: "backdoor", scopes: ["operator"] } }), 401);
    }
    await expectProblem(await call("/v1/admin/teams", { method: "POST", headers: { Authorization: `Basic ${btoa(`admin:${ADMIN}`)}` }, json: { name: "intruder" } }), 401);
    // No key was minted for the team by any of those.
    expect((await json(await call("/v1/keys", { key: team.api_key }))).items).toHaveLength(1);

    const ok = await call("/v1/admin/teams", { method: "POST", key: ADMIN, json: { name: "legit" } });
    expect(ok.status).toBe(201);
    const made = await json(ok);
    expect(made).toMatchObject({ team_id: expect.any(String), name: "legit", api_key: expect.stringMatching(/^sb_[0-9a-f]{48}$/) });
    expect((await json<Team>(await call("/v1/team", { key: made.api_key }))).name).toBe("legit");
    const recovery = await call(`/v1/admin/teams/${team.team_id}/keys`, { method: "POST", key: ADMIN, json: { name: "recovery", scopes: ["read"] } });
    expect(recovery.status).toBe(201);
    expect(await json(recovery)).toMatchObject({ name: "recovery", scopes: ["read"], key: expect.stringMatching(/^sb_/) });
  });
});

describe("auth: scopes (403)", () => {
  it("a read key gets 403 on writes, and nothing is written", async () => {
    const team = await createTeam();
    const read = await createKey(team.api_key, ["read"]);
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const newSid = uid("s");
    const writes: [string, string, unknown][] = [
      ["POST", "/v1/sessions", { id: newSid }],
      ["POST", "/v1/callbacks", { id: uid("e"), type: "update_status", session_id: sid, data: { status: "failed" } }],
      ["POST", "/v1/callbacks", { events: [stepEvent(sid, tid, "step_started", { step: "design" })] }],
      ["PATCH", `/v1/sessions/${sid}`, { status: "failed" }],
      ["POST", `/v1/sessions/${sid}/topics`, { id: "t-read" }],
      ["POST", "/v1/keys", { name: "escalate", scopes: ["operator"] }],
      ["PATCH", "/v1/team", { name: "renamed" }],
    ];
    for (const [method, path, body] of writes) {
      const problem = await expectProblem(await call(path, { method, key: read, json: body }), 403);
      expect(problem.title, `${method} ${path}`).toBe("Forbidden");
    }
    await expectProblem(await call("/v1/keys", { key: read }), 403);
    await expectProblem(await call("/v1/team", { key: read }), 403);
    await expectProblem(await call("/v1/dead-letters", { key: read }), 403);

    // A marker from the operator: once applied, anything enqueued before it would be too.
    await (await postEvents(team.api_key, [{ id: uid("e"), type: "insight_started", session_id: sid, data: { insight_id: "marker" } }])).json();
    const s = await eventually(() => summary(team.api_key, sid), (x: SessionResponse) => x.insights.marker !== undefined);
    expect(s.status).toBe("created");
    expect(s.topics.map((t) => t.id)).toEqual([tid]);
    expect(s.topics[0]?.steps.design?.status).toBe("pending");
    await expectProblem(await call(`/v1/sessions/${newSid}`, { key: team.api_key }), 404);
    expect((await json(await call("/v1/keys", { key: team.api_key }))).items).toHaveLength(2);
    expect((await json<Team>(await call("/v1/team", { key: team.api_key }))).name).toBe("team");

    // What a read key may do.
    expect((await drain(await call(`/v1/sessions/${sid}`, { key: read }))).status).toBe(200);
    const stream = await call(`/v1/sessions/${sid}/topics/${tid}/stream`, { key: read });
    expect(stream.status).toBe(200);
    await drain(stream);
  });

  it("an agent key gets 403 on operator routes: PATCH session, keys, team, dead letters", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const { sid } = await sessionWithTopic(team.api_key);
    const keys = await json(await call("/v1/keys", { key: team.api_key }));
    const operatorKeyId = keys.items.find((k: ApiKey) => k.scopes.includes("operator")).id as string;
    const refused: [string, string, unknown?][] = [
      ["PATCH", `/v1/sessions/${sid}`, { status: "completed" }],
      ["GET", "/v1/keys"],
      ["POST", "/v1/keys", { name: "escalate", scopes: ["operator"] }],
      ["DELETE", `/v1/keys/${operatorKeyId}`],
      ["GET", "/v1/team"],
      ["PATCH", "/v1/team", { signing_secret: newSigningSecret() }],
      ["GET", "/v1/dead-letters"],
    ];
    for (const [method, path, body] of refused) {
      await expectProblem(await call(path, { method, key: agent, ...(body === undefined ? {} : { json: body }) }), 403);
    }
    expect((await summary(team.api_key, sid)).status).toBe("created");
    const after = await json(await call("/v1/keys", { key: team.api_key }));
    expect(after.items.map((k: ApiKey) => k.id).sort()).toEqual(keys.items.map((k: ApiKey) => k.id).sort());
    expect((await json<Team>(await call("/v1/team", { key: team.api_key }))).signing_secret).toEqual({ set: false });
  });

  it("an agent key can create sessions and topics, post callbacks, and read", async () => {
    const team = await createTeam();
    const agent = await createKey(team.api_key, ["agent"]);
    const sid = uid("s");
    const created = await call("/v1/sessions", { method: "POST", key: agent, json: { id: sid, title: "by agent" } });
    expect(created.status).toBe(201);
    expect(await json(created)).toMatchObject({ id: sid, status: "created", title: "by agent" });
    const topic = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: agent, json: { id: "t1" } });
    expect(topic.status).toBe(201);
    expect(await json(topic)).toMatchObject({ id: "t1", status: "created" });

    const accepted = await postEvents(agent, [
      { id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } },
      stepEvent(sid, "t1", "step_started", { step: "design" }),
      stepEvent(sid, "t1", "alpha.registered", { alpha_id: "a1" }),
    ]);
    expect(accepted.status).toBe(202);
    expect(await json(accepted)).toMatchObject({ accepted: 3 });
    const s = await eventually(() => summary(agent, sid), (x: SessionResponse) => x.status === "running" && x.topics[0]?.alphas.length === 1);
    expect(s.topics[0]).toMatchObject({ id: "t1", current_step: "design" });

    const list = await call("/v1/sessions", { key: agent });
    expect(list.status).toBe(200);
    expect((await json(list)).items.map((x: { id: string }) => x.id)).toEqual([sid]);
    const t = await call(`/v1/sessions/${sid}/topics/t1`, { key: agent });
    expect(t.status).toBe(200);
    expect(await json(t)).toMatchObject({ id: "t1", status: "running" });
    const alphas = await call(`/v1/sessions/${sid}/alphas`, { key: agent });
    expect(alphas.status).toBe(200);
    expect((await json(alphas)).items).toEqual([expect.objectContaining({ id: "a1", topic_id: "t1" })]);
    const stream = await call(`/v1/sessions/${sid}/stream`, { key: agent });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    await drain(stream);
  });
});

describe("auth: API keys", () => {
  it("POST /v1/keys shows the key once; GET /v1/keys never shows the key or its hash", async () => {
    const team = await createTeam();
    const res = await call("/v1/keys", { method: "POST", key: team.api_key, json: { name: "ci", scopes: ["read", "read"] } });
    expect(res.status).toBe(201);
    const created = await json<CreatedKey>(res);
    expect(created).toEqual({ id: expect.any(String), name: "ci", scopes: ["read"], prefix: created.key.slice(0, 9), created_at: expect.any(String), key: expect.stringMatching(/^sb_[0-9a-f]{48}$/) });
    expect(new Date(created.created_at).toISOString()).toBe(created.created_at);

    const listRes = await call("/v1/keys", { key: team.api_key });
    expect(listRes.status).toBe(200);
    const text = await listRes.text();
    const list = JSON.parse(text) as { items: Record<string, unknown>[]; next_cursor: string | null };
    expect(list.items).toHaveLength(2);
    for (const item of list.items) expect(Object.keys(item).sort()).toEqual(["created_at", "id", "name", "prefix", "scopes"]);
    expect(list.items).toContainEqual({ id: created.id, name: "ci", scopes: ["read"], prefix: created.prefix, created_at: created.created_at });
    for (const secret of [created.key, team.api_key, await sha256Hex(created.key), await sha256Hex(team.api_key)]) expect(text).not.toContain(secret);

    // The new key works with its own scopes.
    expect((await drain(await call("/v1/sessions", { key: created.key }))).status).toBe(200);
    await expectProblem(await call("/v1/sessions", { method: "POST", key: created.key, json: { id: uid("s") } }), 403);
    // Only stored hashed: the D1 row holds the SHA-256, never the key.
    const row = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(created.id).first<Record<string, unknown>>();
    expect(row?.hash).toBe(await sha256Hex(created.key));
    expect(JSON.stringify(row)).not.toContain(created.key);
  });
});

describe("auth: browser sign-in cookie", () => {
  it("sets an HttpOnly, Secure, SameSite=Strict cookie that authenticates a GET", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const { body, cookie } = await signIn(team.api_key);
    expect(body.team_id).toBe(team.team_id);
    expect(Date.parse(body.expires_at)).toBeGreaterThan(Date.now());
    expect(cookie.name).toBe("sb_session");
    expect(cookie.value.length).toBeGreaterThan(20);
    expect(cookie.value).not.toContain(team.api_key);
    expect(cookie.attrs).toContain("httponly");
    expect(cookie.attrs).toContain("secure");
    expect(cookie.attrs).toContain("samesite=strict");
    expect(cookie.attrs).toContain("path=/");

    const res = await call("/v1/sessions", { headers: { Cookie: cookie.pair } });
    expect(res.status).toBe(200);
    expect((await json(res)).items.map((s: { id: string }) => s.id)).toEqual([sid]);
    const stream = await call(`/v1/sessions/${sid}/stream`, { headers: { Cookie: cookie.pair } });
    expect(stream.status).toBe(200);
    await drain(stream);
  });

  it("refuses a wrong key at sign-in (401, no cookie) and a tampered cookie", async () => {
    const team = await createTeam();
    const bad = await call("/v1/auth/session", { method: "POST", json: { api_key: `sb_${"f".repeat(48)}` } });
    expect(bad.headers.get("set-cookie")).toBeNull();
    await expectProblem(bad, 401);
    const { cookie } = await signIn(team.api_key);
    const flipped = cookie.value.slice(0, -2) + (cookie.value.at(-2) === "A" ? "B" : "A") + cookie.value.slice(-1);
    await expectProblem(await call("/v1/sessions", { headers: { Cookie: `sb_session=${flipped}` } }), 401);
    await expectProblem(await call("/v1/sessions", { headers: { Cookie: "sb_session=garbage" } }), 401);
  });

  it("a cookie carries its key's scopes, and ends when the key is deleted", async () => {
    const team = await createTeam();
    const res = await call("/v1/keys", { method: "POST", key: team.api_key, json: { name: "viewer", scopes: ["read"] } });
    const viewer = await json<CreatedKey>(res);
    const { cookie } = await signIn(viewer.key);
    expect((await drain(await call("/v1/sessions", { headers: { Cookie: cookie.pair } }))).status).toBe(200);
    // From this origin, so the 403 is the scope's (test/auth-csrf.test.ts has the origin's).
    const scope = await expectProblem(await call("/v1/sessions", { method: "POST", headers: { Cookie: cookie.pair, Origin: "https://switchboard.test" }, json: { id: uid("s") } }), 403);
    expect(scope.detail).toContain("scope");
    expect((await drain(await call(`/v1/keys/${viewer.id}`, { method: "DELETE", key: team.api_key }))).status).toBe(204);
    await expectProblem(await call("/v1/sessions", { headers: { Cookie: cookie.pair } }), 401);
  });

  it("DELETE /v1/auth/session clears the cookie", async () => {
    const res = await call("/v1/auth/session", { method: "DELETE" });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
    const cleared = parseSetCookie(res.headers.get("set-cookie"));
    expect(cleared.name).toBe("sb_session");
    expect(cleared.value).toBe("");
    const maxAge = cleared.attrs.find((a) => a.startsWith("max-age="));
    const expires = cleared.attrs.find((a) => a.startsWith("expires="));
    expect(maxAge === "max-age=0" || (expires !== undefined && Date.parse(expires.slice("expires=".length)) < Date.now())).toBe(true);
    expect(cleared.attrs).toContain("path=/");
    // The cleared value authenticates nothing.
    await expectProblem(await call("/v1/sessions", { headers: { Cookie: cleared.pair } }), 401);
  });
});

describe("auth: stream tokens", () => {
  it("a token works with ?access_token= on exactly its path, for GET", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const path = `/v1/sessions/${sid}/topics/${tid}/stream`;
    const minted = await mintStreamToken(team.api_key, path);
    const ttl = Date.parse(minted.expires_at) - Date.now();
    expect(ttl).toBeGreaterThan(9 * 60 * 1000);
    expect(ttl).toBeLessThanOrEqual(10 * 60 * 1000);
    const token = encodeURIComponent(minted.token);

    const ok = await call(`${path}?access_token=${token}`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toContain("text/event-stream");
    await drain(ok);
    // With Last-Event-ID too (what EventSource sends on reconnect).
    const again = await call(`${path}?access_token=${token}&last_event_id=0`);
    expect(again.status).toBe(200);
    await drain(again);

    for (const other of [`/v1/sessions/${sid}/stream`, `/alpha/discovery/${sid}/${tid}/stream`, `/v1/sessions/${sid}/topics/${tid}`, `/v1/sessions/${sid}`, "/v1/sessions"]) {
      await expectProblem(await call(`${other}?access_token=${token}`), 401);
    }
    // Only GET, even on its own path (without the method check this would reach routing: 404).
    await expectProblem(await call(`${path}?access_token=${token}`, { method: "POST", json: {} }), 401);
    await expectProblem(await call(`/v1/sessions?access_token=${token}`, { method: "POST", json: { id: uid("s") } }), 401);
    // Tampered, or a cookie passed as a token: refused.
    const flipped = minted.token.slice(0, -2) + (minted.token.at(-2) === "A" ? "B" : "A") + minted.token.slice(-1);
    await expectProblem(await call(`${path}?access_token=${encodeURIComponent(flipped)}`), 401);
    const { cookie } = await signIn(team.api_key);
    await expectProblem(await call(`${path}?access_token=${encodeURIComponent(cookie.value)}`), 401);
    // ...and a stream token is not a session cookie.
    await expectProblem(await call(path, { headers: { Cookie: `sb_session=${minted.token}` } }), 401);
  });

  it("each alias path takes its own token", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    for (const path of [`/v1/sessions/${sid}/stream`, `/alpha/discovery/${sid}/stream`, `/api/alpha/sessions/${sid}/stream`, `/alpha/discovery/${sid}/${tid}/stream`]) {
      const { token } = await mintStreamToken(team.api_key, path);
      const res = await call(`${path}?access_token=${encodeURIComponent(token)}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/event-stream");
      await drain(res);
    }
  });

  it("minting refuses non-stream paths with 400 naming `path`", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    for (const path of ["/v1/sessions", `/v1/sessions/${sid}`, `/v1/sessions/${sid}/topics/${tid}`, "/v1/keys", "/v1/team", `/v1/sessions/${sid}/stream/extra`, `/v1/sessions/a:b/stream`, `https://evil.example/v1/sessions/${sid}/stream`, `/v1/sessions/${sid}/stream?x=1`]) {
      const problem = await expectProblem(await call("/v1/stream-tokens", { method: "POST", key: team.api_key, json: { path } }), 400);
      expect(problem.errors.map((e) => e.path), path).toContain("path");
    }
  });

  it("a token ends when its key is deleted", async () => {
    const team = await createTeam();
    const { sid } = await sessionWithTopic(team.api_key);
    const res = await call("/v1/keys", { method: "POST", key: team.api_key, json: { name: "viewer", scopes: ["read"] } });
    const viewer = await json<CreatedKey>(res);
    const path = `/v1/sessions/${sid}/stream`;
    const { token } = await mintStreamToken(viewer.key, path);
    expect((await drain(await call(`${path}?access_token=${encodeURIComponent(token)}`))).status).toBe(200);
    expect((await drain(await call(`/v1/keys/${viewer.id}`, { method: "DELETE", key: team.api_key }))).status).toBe(204);
    await expectProblem(await call(`${path}?access_token=${encodeURIComponent(token)}`), 401);
  });
});

describe("auth: team settings and secrets", () => {
  it("GET /v1/team shows secrets only as {set: boolean}", async () => {
    const team = await createTeam("settings");
    const res = await call("/v1/team", { key: team.api_key });
    expect(res.status).toBe(200);
    expect(await json<Team>(res)).toEqual({
      id: team.team_id,
      name: "settings",
      signing_secret: { set: false },
      github_webhook_secret: { set: false },
      github_token: { set: false },
      daily_budget_usd: null,
      max_running: {},
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
  });

  it("stores secrets encrypted, never answers them, and null clears them", async () => {
    const team = await createTeam();
    const signing = newSigningSecret();
    const webhook = `gh-webhook-${crypto.randomUUID()}`;
    const token = `ghp_${crypto.randomUUID().replaceAll("-", "")}`;
    const plaintexts = [signing, signing.slice("whsec_".length), webhook, token];
    const seen: string[] = [];
    const read = async (res: Response) => {
      const text = await res.text();
      seen.push(text);
      return { status: res.status, body: JSON.parse(text) as Team };
    };

    const patched = await read(await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: signing, github_webhook_secret: webhook, github_token: token } }));
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ signing_secret: { set: true }, github_webhook_secret: { set: true }, github_token: { set: true } });
    const got = await read(await call("/v1/team", { key: team.api_key }));
    expect(got.body).toMatchObject({ signing_secret: { set: true }, github_webhook_secret: { set: true }, github_token: { set: true } });
    expect(got.body.signing_secret).toEqual({ set: true });

    const row = await env.DB.prepare("SELECT signing_secret, github_webhook_secret, github_token FROM teams WHERE id = ?").bind(team.team_id).first<Record<string, string | null>>();
    expect(row?.signing_secret).toEqual(expect.any(String));
    expect(row?.github_webhook_secret).toEqual(expect.any(String));
    expect(row?.github_token).toEqual(expect.any(String));
    const stored = JSON.stringify(row);
    for (const p of plaintexts) expect(stored).not.toContain(p);
    // Encrypted, not encoded: the stored text does not decode back to the secret either.
    expect(stored).not.toContain(btoa(token));
    expect(row?.signing_secret).not.toBe(row?.github_webhook_secret);

    // Callbacks must now be signed (the secret is in force, not just recorded).
    const sid = uid("s");
    await createSession(team.api_key, sid);
    const unsigned = await postEvents(team.api_key, [{ id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } }]);
    const unsignedText = await unsigned.clone().text();
    seen.push(unsignedText);
    await expectProblem(unsigned, 401);

    const cleared = await read(await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: null, github_token: null } }));
    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({ signing_secret: { set: false }, github_webhook_secret: { set: true }, github_token: { set: false } });
    const after = await env.DB.prepare("SELECT signing_secret, github_token FROM teams WHERE id = ?").bind(team.team_id).first<Record<string, string | null>>();
    expect(after).toEqual({ signing_secret: null, github_token: null });
    const accepted = await postEvents(team.api_key, [{ id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } }]);
    expect(accepted.status).toBe(202);
    seen.push(await accepted.text());
    seen.push(await (await call(`/v1/sessions/${sid}`, { key: team.api_key })).text());

    for (const text of seen) for (const p of plaintexts) expect(text).not.toContain(p);
  });

  it("refuses a signing secret that is not whsec_ + base64 of at least 24 bytes (400 naming the field)", async () => {
    const team = await createTeam();
    const short = `whsec_${btoa("x".repeat(16))}`;
    for (const bad of ["not-a-secret", short, "whsec_", `whsec_${"!".repeat(40)}`, 42]) {
      const problem = await expectProblem(await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: bad } }), 400);
      expect(problem.errors.map((e) => e.path)).toContain("signing_secret");
      // The refused value is not echoed back.
      if (typeof bad === "string" && bad.length > 8) expect(JSON.stringify(problem)).not.toContain(bad);
    }
    expect((await json<Team>(await call("/v1/team", { key: team.api_key }))).signing_secret).toEqual({ set: false });
  });

  it("merges max_running into the current limits (JSON Merge Patch): other roles keep theirs, null removes one, or all", async () => {
    const team = await createTeam();
    const patch = async (body: unknown) => {
      const res = await call("/v1/team", { method: "PATCH", key: team.api_key, json: body });
      expect(res.status).toBe(200);
      return (await json<Team>(res)).max_running;
    };
    expect(await patch({ max_running: { executor: 3, planner: 1 } })).toEqual({ executor: 3, planner: 1 });
    expect(await patch({ max_running: { x: 0 } })).toEqual({ executor: 3, planner: 1, x: 0 });
    expect(await patch({ max_running: { planner: null, executor: 5 } })).toEqual({ executor: 5, x: 0 });
    expect(await patch({ max_running: { gone: null } })).toEqual({ executor: 5, x: 0 });
    expect(await patch({ max_running: {} })).toEqual({ executor: 5, x: 0 });
    expect(await patch({ name: "other field" })).toEqual({ executor: 5, x: 0 });
    expect((await json<Team>(await call("/v1/team", { key: team.api_key }))).max_running).toEqual({ executor: 5, x: 0 });
    expect(await patch({ max_running: null })).toEqual({});
    expect(await patch({ max_running: { executor: null } })).toEqual({});
    // Two operators changing different roles at once both keep their change.
    await Promise.all([patch({ max_running: { a: 1 } }), patch({ max_running: { b: 2 } })]);
    expect((await json<Team>(await call("/v1/team", { key: team.api_key }))).max_running).toEqual(expect.objectContaining({ a: 1, b: 2 }));
  });
});
