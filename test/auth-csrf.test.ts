import { describe, expect, it } from "vitest";
import { call, createTeam, drain, expectProblem, json } from "./helpers";

// A page of another origin can make the browser send the sign-in cookie with a POST that has
// no body and no Content-Type (no CORS preflight): cancel or retry a task, send a test
// notification. Changes made with the cookie must show they come from this origin.

const OWN = "https://switchboard.test";

async function signIn(apiKey: string): Promise<string> {
  const res = await call("/v1/auth/session", { method: "POST", json: { api_key: apiKey } });
  expect(res.status).toBe(200);
  await res.body?.cancel();
  return (res.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
}

async function newTask(key: string): Promise<string> {
  const res = await call("/v1/tasks", { method: "POST", key, json: { title: "t", description: "d", role: "executor", priority: "normal" } });
  expect(res.status).toBe(201);
  return (await json<{ id: string }>(res)).id;
}

const status = async (key: string, id: string) => (await json<{ status: string }>(await call(`/v1/tasks/${id}`, { key }))).status;

describe("CSRF: cookie-authenticated changes must come from this origin", () => {
  it("refuses (403) a bodiless cross-origin POST, one with no Origin or Sec-Fetch-Site, and a cross-site one; the task is untouched", async () => {
    const team = await createTeam();
    const cookie = await signIn(team.api_key);
    const id = await newTask(team.api_key);
    const refused: Record<string, string>[] = [
      { Origin: "https://evil.example" },
      { Origin: "null" },
      { Origin: "http://switchboard.test" },
      { Origin: "https://switchboard.test.evil.example" },
      {},
      { "Sec-Fetch-Site": "cross-site" },
      { "Sec-Fetch-Site": "same-site" },
      { "Sec-Fetch-Site": "none" },
      { Origin: OWN, "Sec-Fetch-Site": "cross-site" },
      { Origin: "https://evil.example", "Sec-Fetch-Site": "same-origin" },
    ];
    for (const headers of refused) {
      const problem = await expectProblem(await call(`/v1/tasks/${id}/cancel`, { method: "POST", headers: { Cookie: cookie, ...headers } }), 403);
      expect(problem.detail, JSON.stringify(headers)).toContain("origin");
    }
    // A JSON write and a DELETE are held to the same rule.
    await expectProblem(await call("/v1/sessions", { method: "POST", headers: { Cookie: cookie, Origin: "https://evil.example" }, json: { id: "csrf" } }), 403);
    const keys = await json(await call("/v1/keys", { key: team.api_key }));
    await expectProblem(await call(`/v1/keys/${keys.items[0].id}`, { method: "DELETE", headers: { Cookie: cookie, Origin: "https://evil.example" } }), 403);
    expect(await status(team.api_key, id)).toBe("pending");
    await expectProblem(await call("/v1/sessions/csrf", { key: team.api_key }), 404);
    expect((await json(await call("/v1/keys", { key: team.api_key }))).items).toHaveLength(1);
  });

  it("takes the cookie from this origin (Origin, or Sec-Fetch-Site: same-origin), and reads from anywhere", async () => {
    const team = await createTeam();
    const cookie = await signIn(team.api_key);
    const id = await newTask(team.api_key);
    const cancelled = await call(`/v1/tasks/${id}/cancel`, { method: "POST", headers: { Cookie: cookie, Origin: OWN } });
    expect(cancelled.status).toBe(200);
    expect((await json(cancelled)).status).toBe("cancelled");
    const retried = await call(`/v1/tasks/${id}/retry`, { method: "POST", headers: { Cookie: cookie, "Sec-Fetch-Site": "same-origin" } });
    expect(retried.status).toBe(200);
    expect((await json(retried)).status).toBe("pending");
    // GET changes nothing: the cookie works whatever the origin says.
    expect((await drain(await call(`/v1/tasks/${id}`, { headers: { Cookie: cookie, Origin: "https://evil.example", "Sec-Fetch-Site": "cross-site" } }))).status).toBe(200);
  });

  it("leaves Bearer requests alone, whatever Origin they carry (a page cannot make a browser send that header)", async () => {
    const team = await createTeam();
    const id = await newTask(team.api_key);
    const res = await call(`/v1/tasks/${id}/cancel`, { method: "POST", key: team.api_key, headers: { Origin: "https://evil.example", "Sec-Fetch-Site": "cross-site" } });
    expect(res.status).toBe(200);
    expect((await json(res)).status).toBe("cancelled");
  });
});
