import { describe, expect, it } from "vitest";
import { verifyGitHubSignature } from "../src/routes/github";
import type { TaskResponse } from "../src/lib/task-schemas";
import { toHex, utf8 } from "../src/lib/encoding";
import { call, createTeam, errorPaths, expectProblem, json } from "./helpers";

/** GitHub's published example ("Validating webhook deliveries"). */
const VECTOR = {
  secret: "It's a Secret to Everybody",
  payload: "Hello, World!",
  signature: "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
};

async function sign(secret: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", utf8.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return `sha256=${toHex(await crypto.subtle.sign("HMAC", key, utf8.encode(body)))}`;
}

/** A team with its webhook secret set through the API. */
async function teamWithSecret(secret = `whs-${crypto.randomUUID()}`) {
  const team = await createTeam();
  const res = await call("/v1/team", { method: "PATCH", key: team.api_key, json: { github_webhook_secret: secret } });
  expect(res.status).toBe(200);
  expect((await json(res)).github_webhook_secret).toEqual({ set: true });
  return { ...team, secret };
}

/** Posts a delivery as GitHub does: raw body, application/json, signed unless told otherwise. */
async function deliver(teamId: string, event: string, body: string, opts: { secret?: string; signature?: string | null; delivery?: string } = {}) {
  const headers = new Headers({ "Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": opts.delivery ?? crypto.randomUUID(), "User-Agent": "GitHub-Hookshot/test" });
  const signature = opts.signature !== undefined ? opts.signature : opts.secret ? await sign(opts.secret, body) : null;
  if (signature !== null) headers.set("X-Hub-Signature-256", signature);
  return call(`/v1/webhooks/github/${teamId}`, { method: "POST", headers, body });
}

function issuesPayload(action: string, labels: string[], over: { number?: number; title?: string; body?: string | null } = {}) {
  const number = over.number ?? 42;
  return JSON.stringify({
    action,
    issue: {
      id: 1001,
      number,
      title: over.title ?? "Login fails with SSO",
      body: over.body === undefined ? "## Steps\n1. Sign in with SSO\n2. See a 500" : over.body,
      html_url: `https://github.com/acme/app/issues/${number}`,
      state: "open",
      labels: labels.map((name, i) => ({ id: i + 1, name, color: "ededed", default: false })),
      user: { login: "octocat" },
    },
    ...(action === "labeled" ? { label: { name: labels.at(-1) ?? "x" } } : {}),
    repository: { id: 7, full_name: "acme/app", name: "app", private: true },
    sender: { login: "octocat" },
  });
}

async function tasksOf(key: string): Promise<TaskResponse[]> {
  return (await json<{ items: TaskResponse[] }>(await call("/v1/tasks?limit=200", { key }))).items;
}

describe("GitHub webhook: signatures", () => {
  it("accepts GitHub's published test vector and refuses near misses", async () => {
    const body = new Uint8Array(utf8.encode(VECTOR.payload));
    expect(await verifyGitHubSignature(VECTOR.secret, body, VECTOR.signature)).toBe(true);
    expect(await sign(VECTOR.secret, VECTOR.payload)).toBe(VECTOR.signature);
    expect(await verifyGitHubSignature(VECTOR.secret, body, VECTOR.signature.toUpperCase().replace("SHA256=", "sha256="))).toBe(true);
    expect(await verifyGitHubSignature(VECTOR.secret, new Uint8Array(utf8.encode("Hello, World?")), VECTOR.signature)).toBe(false);
    expect(await verifyGitHubSignature("It's a secret to everybody", body, VECTOR.signature)).toBe(false);
    expect(await verifyGitHubSignature(VECTOR.secret, body, VECTOR.signature.slice(7))).toBe(false);
    expect(await verifyGitHubSignature(VECTOR.secret, body, `sha1=${VECTOR.signature.slice(7)}`)).toBe(false);
    expect(await verifyGitHubSignature(VECTOR.secret, body, `${VECTOR.signature.slice(0, -1)}0`)).toBe(false);
    expect(await verifyGitHubSignature(VECTOR.secret, body, null)).toBe(false);

    // And through the route: with the vector's secret set, its signature gets the delivery
    // past the check (then 400: "Hello, World!" is no issue event); a near miss is 401.
    const team = await teamWithSecret(VECTOR.secret);
    const passed = await deliver(team.team_id, "issues", VECTOR.payload, { signature: VECTOR.signature });
    expect(passed.status).toBe(400);
    expect((await json(passed)).detail).toMatch(/not valid JSON/);
    const missed = await deliver(team.team_id, "issues", VECTOR.payload, { signature: `${VECTOR.signature.slice(0, -1)}0` });
    expect(missed.status).toBe(401);
    await missed.text();
  });

  it("answers 401 alike for a bad or missing signature, an unknown team and a team without a secret, and makes no task", async () => {
    const team = await teamWithSecret();
    const body = issuesPayload("opened", ["orchestrator"]);
    const refusals = [
      await deliver(team.team_id, "issues", body, { secret: "not-the-team-secret-at-all" }),
      await deliver(team.team_id, "issues", body, { signature: null }),
      await deliver(team.team_id, "issues", body, { signature: "sha256=nothex" }),
      await deliver(team.team_id, "issues", body, { signature: await sign(team.secret, `${body} `) }),
      await deliver("team_doesnotexist000000000", "issues", body, { secret: team.secret }),
    ];
    const bare = await createTeam();
    refusals.push(await deliver(bare.team_id, "issues", body, { secret: team.secret }));
    refusals.push(await deliver(bare.team_id, "ping", "{}", { secret: "" }));
    const problems = [];
    for (const res of refusals) {
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      problems.push(await json(res));
    }
    // The same answer whether or not the team exists or has a secret.
    expect(new Set(problems.map((p) => `${p.title}|${p.detail}`)).size).toBe(1);
    expect(await tasksOf(team.api_key)).toEqual([]);
    expect(await tasksOf(bare.api_key)).toEqual([]);
  });

  it("will not let team B's secret create tasks in team A", async () => {
    const a = await teamWithSecret();
    const b = await teamWithSecret();
    const body = issuesPayload("opened", ["orchestrator"]);
    const res = await deliver(a.team_id, "issues", body, { secret: b.secret });
    expect(res.status).toBe(401);
    await res.body?.cancel();
    expect(await tasksOf(a.api_key)).toEqual([]);
    expect(await tasksOf(b.api_key)).toEqual([]);
    // The same delivery signed with A's own secret does create it.
    const ok = await deliver(a.team_id, "issues", body, { secret: a.secret });
    expect(ok.status).toBe(202);
    expect(await json(ok)).toMatchObject({ created: true });
    expect(await tasksOf(a.api_key)).toHaveLength(1);
    expect(await tasksOf(b.api_key)).toEqual([]);
  });

  it("stops working once the secret is removed", async () => {
    const team = await teamWithSecret();
    const res = await call("/v1/team", { method: "PATCH", key: team.api_key, json: { github_webhook_secret: null } });
    expect(res.status).toBe(200);
    await res.body?.cancel();
    const ping = await deliver(team.team_id, "ping", "{}", { secret: team.secret });
    expect(ping.status).toBe(401);
    await ping.body?.cancel();
  });
});

describe("GitHub webhook: deliveries", () => {
  it("answers a ping with 200", async () => {
    const team = await teamWithSecret();
    const res = await deliver(team.team_id, "ping", JSON.stringify({ zen: "Keep it logically awesome.", hook_id: 1 }), { secret: team.secret });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ ok: true });
  });

  it("turns an issue labeled orchestrator into one executor task, whatever is delivered again", async () => {
    const team = await teamWithSecret();
    const body = issuesPayload("labeled", ["bug", "priority:high", "orchestrator"]);
    const res = await deliver(team.team_id, "issues", body, { secret: team.secret, delivery: "d-1" });
    expect(res.status).toBe(202);
    const first = await json<{ task_id: string; created: boolean }>(res);
    expect(first).toEqual({ task_id: expect.stringMatching(/^task_/), created: true });

    const task = await json<TaskResponse>(await call(`/v1/tasks/${first.task_id}`, { key: team.api_key }));
    expect(task).toMatchObject({
      title: "Login fails with SSO",
      role: "executor",
      priority: "high",
      source: "github",
      status: "pending",
      idempotency_key: "github:acme/app#42",
    });
    expect(task.description).toContain("## Steps\n1. Sign in with SSO\n2. See a 500");
    expect(task.description).toContain("https://github.com/acme/app/issues/42");

    // GitHub redelivers the same delivery; later the issue gets another label, is reopened.
    const again = [
      await deliver(team.team_id, "issues", body, { secret: team.secret, delivery: "d-1" }),
      await deliver(team.team_id, "issues", issuesPayload("labeled", ["bug", "priority:high", "orchestrator", "backend"]), { secret: team.secret }),
      await deliver(team.team_id, "issues", issuesPayload("reopened", ["orchestrator"], { title: "renamed" }), { secret: team.secret }),
    ];
    for (const r of again) {
      expect(r.status).toBe(202);
      expect(await json(r)).toEqual({ task_id: first.task_id, created: false });
    }
    expect((await tasksOf(team.api_key)).map((t) => t.id)).toEqual([first.task_id]);
  });

  it("keeps the issues' idempotency keys to itself: a client cannot take one first and stop the issue's task", async () => {
    const team = await teamWithSecret();
    for (const key of ["github:acme/app#42", "autoloop:trace-1"]) {
      const refused = await call("/v1/tasks", { method: "POST", key: team.api_key, json: { title: "squat", role: "planner", idempotency_key: key } });
      expect(errorPaths(await expectProblem(refused, 400))).toEqual(["idempotency_key"]);
    }
    expect(await tasksOf(team.api_key)).toEqual([]);
    const res = await deliver(team.team_id, "issues", issuesPayload("labeled", ["orchestrator"]), { secret: team.secret });
    expect(await json(res)).toMatchObject({ created: true });
    expect(await tasksOf(team.api_key)).toMatchObject([{ role: "executor", source: "github", idempotency_key: "github:acme/app#42" }]);
  });

  it("takes priority from a priority label, normal without one, and opens issues without a body", async () => {
    const team = await teamWithSecret();
    const made = async (number: number, labels: string[], action = "opened", issueBody: string | null = "text") => {
      const res = await deliver(team.team_id, "issues", issuesPayload(action, labels, { number, body: issueBody }), { secret: team.secret });
      expect(res.status).toBe(202);
      const { task_id } = await json(res);
      return json<TaskResponse>(await call(`/v1/tasks/${task_id}`, { key: team.api_key }));
    };
    expect((await made(1, ["orchestrator"])).priority).toBe("normal");
    expect((await made(2, ["priority:critical", "orchestrator"], "reopened")).priority).toBe("critical");
    expect((await made(3, ["orchestrator", "priority:low"])).priority).toBe("low");
    const bare = await made(4, ["Orchestrator"], "opened", null);
    expect(bare.description).toContain("https://github.com/acme/app/issues/4");
    expect(bare.source).toBe("github");
  });

  it("ignores issues without the label, other actions and other events, and makes no task", async () => {
    const team = await teamWithSecret();
    const cases: [string, string][] = [
      ["issues", issuesPayload("opened", ["bug"])],
      ["issues", issuesPayload("labeled", ["bug", "priority:high"])],
      ["issues", issuesPayload("closed", ["orchestrator"])],
      ["issues", issuesPayload("edited", ["orchestrator"])],
      ["push", JSON.stringify({ ref: "refs/heads/main" })],
    ];
    for (const [event, body] of cases) {
      const res = await deliver(team.team_id, event, body, { secret: team.secret });
      expect(res.status, `${event} ${body.slice(0, 40)}`).toBe(202);
      expect(await json(res)).toEqual({ ignored: expect.any(String) });
    }
    expect(await tasksOf(team.api_key)).toEqual([]);
  });

  it("answers 400 for a validly signed body that is not JSON or lacks the fields", async () => {
    const team = await teamWithSecret();
    for (const [event, body, detail] of [
      ["issues", "not json at all", /not valid JSON/],
      ["ping", "{", /not valid JSON/],
      ["issues", JSON.stringify({ action: "opened", issue: { title: "no number" }, repository: { full_name: "acme/app" } }), /lacks fields/],
      // The app's depth check skips signed bodies; the route checks after the signature.
      ["issues", issuesPayload("opened", ["orchestrator"]).replace(/^\{/, `{"x":${"[".repeat(5000)}${"]".repeat(5000)},`), /nests deeper/],
    ] as const) {
      const res = await deliver(team.team_id, event, body, { secret: team.secret });
      expect(res.status, body.slice(0, 60)).toBe(400);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      expect((await json(res)).detail).toMatch(detail);
    }
    expect(await tasksOf(team.api_key)).toEqual([]);
  });

  it("asks for application/json, as the webhook settings should say (415 for form-encoded deliveries)", async () => {
    const team = await teamWithSecret();
    const body = `payload=${encodeURIComponent(issuesPayload("opened", ["orchestrator"]))}`;
    const res = await call(`/v1/webhooks/github/${team.team_id}`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "issues", "X-Hub-Signature-256": await sign(team.secret, body) },
      body,
    });
    expect(res.status).toBe(415);
    await res.body?.cancel();
    expect(await tasksOf(team.api_key)).toEqual([]);
    const asJson = await deliver(team.team_id, "issues", issuesPayload("opened", ["orchestrator"]), { secret: team.secret });
    expect(asJson.status).toBe(202);
    expect(await json(asJson)).toMatchObject({ created: true });
  });
});
