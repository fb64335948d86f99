import { afterEach, describe, expect, it, vi } from "vitest";
import { secretEquals } from "../src/lib/crypto";
import { ADMIN, call, expectProblem } from "./helpers";

// The admin token is compared by SHA-256 digest: comparing the strings returned at once when
// the lengths differed, which told a caller the token's length. Without timing asserts, what
// shows the comparison no longer depends on the length is that both values are always hashed.

afterEach(() => vi.restoreAllMocks());

const decoded = (data: unknown) => new TextDecoder().decode(data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array));

describe("ADMIN_TOKEN comparison", () => {
  it("hashes the given token and the real one, whatever their lengths, before comparing", async () => {
    for (const given of ["x", `${ADMIN}-longer-than-the-real-one`, ADMIN.replace(/.$/, "?")]) {
      const digest = vi.spyOn(crypto.subtle, "digest");
      await expectProblem(await call("/v1/admin/teams", { method: "POST", key: given, json: { name: "intruder" } }), 401);
      const hashed = digest.mock.calls.map(([, data]) => decoded(data));
      expect(hashed, given).toEqual(expect.arrayContaining([given, ADMIN]));
      digest.mockRestore();
    }
  });

  it("secretEquals: equal only for the same string", async () => {
    expect(await secretEquals(ADMIN, ADMIN)).toBe(true);
    for (const other of ["", "x", `${ADMIN}x`, ADMIN.slice(0, -1), ADMIN.toUpperCase()]) expect(await secretEquals(other, ADMIN), other).toBe(false);
  });
});
