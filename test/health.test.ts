import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { HEALTH_TIMEOUT_MS } from "../src/routes/health";
import { call, expectProblem } from "./helpers";

/** The Worker as deployed, with some bindings replaced. */
function healthz(bindings: Partial<Record<keyof Env, unknown>>) {
  return createApp().request("https://switchboard.test/healthz", {}, { ...env, ...bindings });
}

const never = () => new Promise<never>(() => {});

describe("GET /healthz", () => {
  it("answers 200 after reaching D1, R2 and a Durable Object, with its secrets set", async () => {
    const res = await call("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, checks: { secrets: "ok", d1: "ok", r2: "ok", queue: "ok", durable_objects: "ok" } });
  });

  it("calls a Durable Object: one that fails is a 503 problem naming durable_objects", async () => {
    const calls: string[] = [];
    const hubs = { getByName: (name: string) => (calls.push(name), { summary: async () => Promise.reject(new Error("Durable Object reset")) }) };
    const res = await healthz({ SESSION_HUB: hubs });
    const problem = (await expectProblemWithChecks(res)) as { detail: string; errors: { path: string; message: string }[]; checks: Record<string, string> };
    expect(problem.errors).toEqual([{ path: "durable_objects", message: "Durable Object reset" }]);
    expect(problem.detail).toContain("durable_objects");
    expect(problem.checks).toMatchObject({ d1: "ok", r2: "ok", queue: "ok", durable_objects: "error: Durable Object reset" });
    expect(calls).toEqual(["healthz"]);
  });

  it("gives up on what does not answer within the timeout: a hung Durable Object or R2 is a 503", async () => {
    const started = Date.now();
    const res = await healthz({ SESSION_HUB: { getByName: () => ({ summary: never }) }, BUCKET: { head: never } });
    const problem = (await expectProblemWithChecks(res)) as { errors: { path: string; message: string }[] };
    expect(Date.now() - started).toBeLessThan(HEALTH_TIMEOUT_MS + 2000);
    expect(problem.errors.map((e) => e.path).sort()).toEqual(["durable_objects", "r2"]);
    for (const e of problem.errors) expect(e.message).toBe(`timed out after ${HEALTH_TIMEOUT_MS} ms`);
  });

  it("reaches R2 and D1: a failing one is named", async () => {
    const res = await healthz({ BUCKET: { head: async () => Promise.reject(new Error("R2 unreachable")) }, DB: { prepare: () => ({ all: async () => Promise.reject(new Error("D1_ERROR: no such table")) }) } });
    const problem = (await expectProblemWithChecks(res)) as { errors: { path: string; message: string }[] };
    expect(problem.errors).toEqual([
      { path: "d1", message: "D1_ERROR: no such table" },
      { path: "r2", message: "R2 unreachable" },
    ]);
  });
});

/** A 503 problem+json with the checks beside the usual fields. */
async function expectProblemWithChecks(res: Response): Promise<unknown> {
  const body = JSON.parse(await res.clone().text());
  expect(body.checks).toBeTypeOf("object");
  const { checks, ...rest } = body;
  const stripped = new Response(JSON.stringify(rest), { status: res.status, headers: res.headers });
  await res.body?.cancel();
  return { ...(await expectProblem(stripped, 503)), checks };
}
