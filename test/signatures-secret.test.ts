import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { encryptSecret } from "../src/lib/crypto";
import { MIN_SECRET_BYTES, secretKeyBytes, signPayload, verifyPayload } from "../src/lib/standard-webhooks";
import { call, createSession, createTeam, errorPaths, expectProblem, json, uid } from "./helpers";

/** whsec_ and 33 base64 characters: matches the pattern, but atob refuses that length. */
const UNDECODABLE = `whsec_${"A".repeat(33)}`;

describe("signing secrets that do not decode", () => {
  it("are refused by PATCH /v1/team with 400 naming the field, and callbacks keep working", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    for (const bad of [UNDECODABLE, `whsec_${"A".repeat(32)}=`, `whsec_${btoa("x".repeat(MIN_SECRET_BYTES - 1))}`]) {
      const res = await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: bad } });
      const problem = await expectProblem(res, 400);
      expect(errorPaths(problem)).toEqual(["signing_secret"]);
    }
    const settings = await json(await call("/v1/team", { key: team.api_key }));
    expect(settings.signing_secret).toEqual({ set: false });
    const plain = await call("/v1/callbacks", { method: "POST", key: team.api_key, json: { id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } } });
    expect(plain.status).toBe(202);
    await plain.json();
  });

  it("accept the shortest usable key (24 bytes) and padded or unpadded base64", async () => {
    const team = await createTeam();
    const bytes = (n: number) => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(n))));
    for (const ok of [`whsec_${bytes(24)}`, `whsec_${bytes(32)}`, `whsec_${bytes(32).replace(/=+$/, "")}`, `whsec_${bytes(64)}`]) {
      const res = await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: ok } });
      expect(res.status, ok).toBe(200);
      await res.json();
    }
    expect(secretKeyBytes(UNDECODABLE)).toBeNull();
    expect(secretKeyBytes(`whsec_${bytes(24)}`)?.byteLength).toBe(24);
  });

  it("stored before the check, answer callbacks with a 503 problem naming the secret, never a 500", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    // As a row written before PATCH checked the key (no isolate has read this team's secret yet).
    const stored = await encryptSecret(env.SECRETS_KEY, UNDECODABLE, `${team.team_id}:signing_secret`);
    await env.DB.prepare("UPDATE teams SET signing_secret = ? WHERE id = ?").bind(stored, team.team_id).run();
    const res = await call("/v1/callbacks", { method: "POST", key: team.api_key, json: { id: uid("e"), type: "update_status", session_id: sid, data: { status: "running" } } });
    const problem = await expectProblem(res, 503);
    expect(problem.detail).toContain("signing secret");
    expect(problem.detail).toContain("PATCH /v1/team");
    expect(await verifyPayload(UNDECODABLE, { id: "m", timestamp: "1", signature: "v1,x" }, "{}", 1)).toEqual({ ok: false, reason: "unusable_secret" });
    await expect(signPayload(UNDECODABLE, "m", 1, "{}")).rejects.toThrow(/usable/);
  });
});
