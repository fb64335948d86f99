import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { TEAM_EVENT_TYPES } from "../src/domain/team-events";
import { call, json } from "./helpers";

interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, { summary?: string; description?: string; responses?: Record<string, unknown> }>>;
  components?: { securitySchemes?: Record<string, unknown> };
}

/** Every route of src/routes/*.ts, as the contract (shared/DESIGN.md) names them. */
const EXPECTED: [string, string][] = [
  ["get", "/healthz"],
  ["post", "/v1/admin/teams"],
  ["post", "/v1/admin/teams/{team_id}/keys"],
  ["post", "/v1/admin/teams/{team_id}/hubs/restart"],
  ["post", "/v1/auth/session"],
  ["delete", "/v1/auth/session"],
  ["post", "/v1/stream-tokens"],
  ["post", "/v1/keys"],
  ["get", "/v1/keys"],
  ["delete", "/v1/keys/{id}"],
  ["get", "/v1/team"],
  ["patch", "/v1/team"],
  ["post", "/v1/sessions"],
  ["get", "/v1/sessions"],
  ["get", "/v1/sessions/{sid}"],
  ["patch", "/v1/sessions/{sid}"],
  ["post", "/v1/sessions/{sid}/topics"],
  ["get", "/v1/sessions/{sid}/topics"],
  ["get", "/v1/sessions/{sid}/topics/{tid}"],
  ["get", "/v1/sessions/{sid}/alphas"],
  ["post", "/v1/callbacks"],
  ["get", "/v1/sessions/{sid}/stream"],
  ["get", "/v1/sessions/{sid}/topics/{tid}/stream"],
  ["get", "/alpha/discovery/{sid}/stream"],
  ["get", "/alpha/discovery/{sid}/{tid}/stream"],
  ["get", "/api/alpha/sessions/{sid}/stream"],
  ["get", "/v1/dead-letters"],
  ["get", "/v1/sentinels"],
  ["get", "/v1/usage"],
  ["get", "/v1/sessions/{sid}/topics/{tid}/workspace"],
  ["put", "/v1/sessions/{sid}/topics/{tid}/workspace/{path}"],
  ["get", "/v1/sessions/{sid}/topics/{tid}/workspace/{path}"],
  ["delete", "/v1/sessions/{sid}/topics/{tid}/workspace/{path}"],
  ["post", "/v1/tasks"],
  ["get", "/v1/tasks"],
  ["get", "/v1/tasks/counts"],
  ["get", "/v1/tasks/{id}"],
  ["post", "/v1/tasks/{id}/cancel"],
  ["post", "/v1/tasks/{id}/retry"],
  ["post", "/v1/tasks/claim"],
  ["post", "/v1/tasks/{id}/heartbeat"],
  ["post", "/v1/tasks/{id}/complete"],
  ["post", "/v1/tasks/{id}/fail"],
  ["post", "/v1/workers/{wid}/heartbeat"],
  ["get", "/v1/workers"],
  ["get", "/v1/workers/{wid}"],
  ["post", "/v1/workers/{wid}/logs"],
  ["get", "/v1/workers/{wid}/logs"],
  ["get", "/v1/tasks/{id}/logs"],
  ["get", "/v1/costs"],
  ["post", "/v1/questions"],
  ["get", "/v1/questions"],
  ["get", "/v1/questions/{qid}"],
  ["post", "/v1/questions/{qid}/answer"],
  ["post", "/v1/webhooks/github/{team_id}"],
];

async function fetchDoc(): Promise<OpenApiDoc> {
  const res = await call("/openapi.json");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("application/json");
  return json<OpenApiDoc>(res);
}

const documented = (doc: OpenApiDoc) => Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method} ${path}`));

describe("GET /openapi.json", () => {
  it("is an OpenAPI 3.1 document, served without credentials", async () => {
    const doc = await fetchDoc();
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.components?.securitySchemes).toHaveProperty("bearer");
  });

  it("lists every route of the contract, stream aliases and /v1/callbacks included", async () => {
    const ops = documented(await fetchDoc());
    for (const [method, path] of EXPECTED) expect(ops, `${method.toUpperCase()} ${path}`).toContain(`${method} ${path}`);
  });

  it("lists every route the app actually serves, and none it does not", async () => {
    // Hono keeps every registered handler; middleware shows up as method ALL.
    const served = new Set(
      createApp()
        .routes.filter((r) => r.method !== "ALL" && r.path !== "/openapi.json")
        .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}").replace(/\/\*$/, "/{path}")}`),
    );
    expect(served.size).toBeGreaterThanOrEqual(EXPECTED.length);
    const ops = documented(await fetchDoc());
    expect([...served].filter((op) => !ops.includes(op))).toEqual([]);
    expect(ops.filter((op) => !served.has(op))).toEqual([]);
  });

  it("documents each operation with a summary and its responses, errors included", async () => {
    const doc = await fetchDoc();
    for (const [method, path] of EXPECTED) {
      const op = doc.paths[path]?.[method];
      expect(op?.summary, `${method} ${path}`).toEqual(expect.any(String));
      expect(Object.keys(op?.responses ?? {}).length, `${method} ${path}`).toBeGreaterThan(0);
    }
    for (const [method, path] of EXPECTED.filter(([, p]) => p.startsWith("/v1/sessions") || p.startsWith("/v1/tasks") || p === "/v1/callbacks")) {
      expect(Object.keys(doc.paths[path]?.[method]?.responses ?? {}), `${method} ${path}`).toEqual(expect.arrayContaining(["400", "401", "404"]));
    }
    // What POST /v1/callbacks answers besides (test/callbacks-oversize.test.ts, bad-input, signatures-secret).
    expect(Object.keys(doc.paths["/v1/callbacks"]?.post?.responses ?? {})).toEqual(expect.arrayContaining(["202", "413", "415", "503"]));
  });

  it("lists 413 and 415 on every operation with a JSON body (refused before any handler), and 412 on the workspace's conditional writes", async () => {
    const doc = await fetchDoc();
    let withBody = 0;
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(item)) {
        if (!op?.requestBody?.content?.["application/json"]) continue;
        withBody += 1;
        expect(Object.keys(op.responses ?? {}), `${method} ${path}`).toEqual(expect.arrayContaining(["413", "415"]));
      }
    }
    expect(withBody).toBeGreaterThan(15);
    const ws = doc.paths["/v1/sessions/{sid}/topics/{tid}/workspace/{path}"];
    for (const method of ["get", "put", "delete"]) expect(Object.keys(ws?.[method]?.responses ?? {}), method).toContain("412");
  });

  it("describes the team stream with every event type it carries", async () => {
    const description = (await fetchDoc()).paths["/v1/stream"]?.get?.description ?? "";
    for (const type of TEAM_EVENT_TYPES) expect(description, type).toMatch(new RegExp(`\\b${type.replace(".", "\\.")}\\b`));
  });
});
