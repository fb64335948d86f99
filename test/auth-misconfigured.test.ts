import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { ADMIN, call, createTeam, expectProblem, json, newSigningSecret } from "./helpers";

// A deployment whose SECRETS_KEY is gone (a later `wrangler secret delete`, a .dev.vars without
// it) or is a placeholder must fail closed: HKDF over empty or tiny input gives keys anyone can
// compute, so cookies and stream tokens could be forged and stored secrets read.

const BASE = "https://switchboard.test";
const utf8 = new TextEncoder();
const b64url = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

/** What an attacker computes: the token format of src/lib/crypto.ts signed under a guessed key. */
async function forge(secretsKey: string, purpose: string, payload: Record<string, unknown>): Promise<string> {
  const base = await crypto.subtle.importKey("raw", utf8.encode(secretsKey), "HKDF", false, ["deriveKey"]);
  const key = await crypto.subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: utf8.encode(`switchboard:${purpose}`) }, base, { name: "HMAC", hash: "SHA-256", length: 256 }, false, ["sign"]);
  const body = b64url(utf8.encode(JSON.stringify(payload)));
  return `${body}.${b64url(new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8.encode(body))))}`;
}

/** The Worker with some bindings replaced, as a misconfigured deploy would have them. */
function withEnv(bindings: Partial<Record<keyof Env, unknown>>) {
  const app = createApp();
  return (path: string, init: RequestInit & { key?: string; json?: unknown } = {}) => {
    const headers = new Headers(init.headers);
    if (init.key) headers.set("Authorization", `Bearer ${init.key}`);
    if (init.json !== undefined) headers.set("Content-Type", "application/json");
    const body = init.json !== undefined ? JSON.stringify(init.json) : init.body;
    return app.request(`${BASE}${path}`, { ...init, headers, body }, { ...env, ...bindings });
  };
}

const BAD_KEYS: [string, string | undefined, string][] = [
  ["missing", undefined, "SECRETS_KEY is not set"],
  ["empty", "", "SECRETS_KEY is not set"],
  ["one character", "x", "SECRETS_KEY is shorter than 32 bytes"],
  ["31 bytes", "k".repeat(31), "SECRETS_KEY is shorter than 32 bytes"],
];

describe("SECRETS_KEY missing or too short: fail closed (503)", () => {
  for (const [what, secretsKey, reason] of BAD_KEYS) {
    it(`${what}: forged cookies and stream tokens are refused with 503, nothing is signed or encrypted, /healthz fails`, async () => {
      const team = await createTeam();
      const keyId = (await json(await call("/v1/keys", { key: team.api_key }))).items[0].id as string;
      const sid = "s1";
      const fetchWith = withEnv({ SECRETS_KEY: secretsKey });
      const exp = Date.now() + 3_600_000;
      const cookie = await forge(secretsKey ?? "", "session", { team: team.team_id, key: keyId, exp });
      const token = await forge(secretsKey ?? "", "stream", { team: team.team_id, key: keyId, path: "/v1/stream", exp });
      const same = { Origin: BASE };

      const refused: [string, Response][] = [
        ["forged cookie", await fetchWith("/v1/sessions", { headers: { Cookie: `sb_session=${cookie}` } })],
        ["forged cookie, write", await fetchWith("/v1/sessions", { method: "POST", headers: { Cookie: `sb_session=${cookie}`, ...same }, json: { id: sid } })],
        ["forged stream token", await fetchWith(`/v1/stream?access_token=${encodeURIComponent(token)}`)],
        ["sign-in", await fetchWith("/v1/auth/session", { method: "POST", json: { api_key: team.api_key } })],
        ["stream token", await fetchWith("/v1/stream-tokens", { method: "POST", key: team.api_key, json: { path: "/v1/stream" } })],
        ["team secret", await fetchWith("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: newSigningSecret() } })],
      ];
      for (const [name, res] of refused) {
        expect(res.headers.get("set-cookie"), name).toBeNull();
        const problem = await expectProblem(res, 503);
        expect(problem.detail, name).toContain(reason);
        if (secretsKey) expect(JSON.stringify(problem), name).not.toContain(secretsKey);
      }
      // Nothing was written with the bad key.
      expect((await json(await call("/v1/team", { key: team.api_key }))).signing_secret).toEqual({ set: false });
      await expectProblem(await call(`/v1/sessions/${sid}`, { key: team.api_key }), 404);
      // Routes that need no key go on: a Bearer key is checked by its hash alone.
      const listed = await fetchWith("/v1/sessions", { key: team.api_key });
      expect(listed.status).toBe(200);
      await listed.body?.cancel();

      const health = await fetchWith("/healthz");
      expect(health.status).toBe(503);
      expect(health.headers.get("content-type")).toBe("application/problem+json");
      const body = await json(health);
      expect(body.checks).toMatchObject({ secrets: `error: ${reason}`, d1: "ok", r2: "ok" });
      expect(body.errors).toEqual([{ path: "secrets", message: reason }]);
      if (secretsKey) expect(JSON.stringify(body)).not.toContain(secretsKey);
    });
  }

  it("a key of 32 bytes or more is accepted (the test key, and what npm start generates)", async () => {
    const generated = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
    for (const secretsKey of [env.SECRETS_KEY, generated, "k".repeat(32)]) {
      const team = await createTeam();
      const fetchWith = withEnv({ SECRETS_KEY: secretsKey });
      const res = await fetchWith("/v1/auth/session", { method: "POST", json: { api_key: team.api_key } });
      expect(res.status).toBe(200);
      const pair = (res.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
      await res.body?.cancel();
      const listed = await fetchWith("/v1/sessions", { headers: { Cookie: pair } });
      expect(listed.status).toBe(200);
      await listed.body?.cancel();
      const health = await fetchWith("/healthz");
      expect((await json(health)).checks.secrets).toBe("ok");
    }
  });
});

describe("ADMIN_TOKEN missing: admin routes answer 503, not 401", () => {
  for (const adminToken of [undefined, "", "  "]) {
    it(`ADMIN_TOKEN ${JSON.stringify(adminToken)}: no team is created whatever is sent; /healthz names it`, async () => {
      const fetchWith = withEnv({ ADMIN_TOKEN: adminToken });
      for (const key of [undefined, ADMIN, "x"]) {
        const problem = await expectProblem(await fetchWith("/v1/admin/teams", { method: "POST", ...(key ? { key } : {}), json: { name: "intruder" } }), 503);
        expect(problem.detail).toContain("ADMIN_TOKEN is not set");
      }
      // An empty bearer compares equal to an empty token: not even that passes.
      await expectProblem(await fetchWith("/v1/admin/teams", { method: "POST", headers: { Authorization: "Bearer " }, json: { name: "intruder" } }), 503);
      const health = await fetchWith("/healthz");
      expect(health.status).toBe(503);
      expect((await json(health)).checks.secrets).toBe("error: ADMIN_TOKEN is not set");
    });
  }
});
