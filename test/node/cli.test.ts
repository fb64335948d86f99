import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { AwsClient } from "aws4fetch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SwitchboardClient } from "../../cli/client";
import { pickRotatedToken } from "../../cli/rotation";
import { type DevWorker, eventually, getJson, setUpTeam, startDevWorker } from "./dev-worker";
import { startLocalS3 } from "./local-s3";

const CLI = join(process.cwd(), "cli", "dist", "switchboard.mjs");
const AGENT = join(process.cwd(), "test", "node", "fixtures", "fake-agent.mjs");

let worker: DevWorker;
beforeAll(async () => {
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  await worker?.stop();
});

function runCli(args: string[], env: Record<string, string>, onStdout?: (text: string, child: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      onStdout?.(stdout, child);
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("agent client against the real Worker", () => {
  it("sends single and batched events, signed when the team requires it", async () => {
    const team = await setUpTeam(worker, "sign", "t1");
    const secret = `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;
    await team.post("/v1/team", team.api_key, { signing_secret: secret }, "PATCH");
    const unsigned = new SwitchboardClient({ baseUrl: worker.url, apiKey: team.api_key, retries: 0 });
    await expect(unsigned.send({ id: "u1", type: "update_status", session_id: "sign", data: { status: "running" } })).rejects.toMatchObject({ status: 401, message: expect.stringMatching(/^Invalid signature: /) });
    const client = new SwitchboardClient({ baseUrl: worker.url, apiKey: team.api_key, signingSecret: secret });
    expect(await client.send({ id: "e1", type: "update_status", session_id: "sign", data: { status: "running" } })).toEqual({ delivered: "callback", accepted: 1 });
    const batch = Array.from({ length: 150 }, (_, i) => ({ id: `b${i}`, type: "alpha.registered" as const, session_id: "sign", topic_id: "t1", data: { alpha_id: `a${i}` } }));
    expect(await client.send(batch)).toEqual({ delivered: "callback", accepted: 150 });
    await eventually(() => getJson(worker, "/v1/sessions/sign/alphas?limit=200", team.api_key), (l) => l.items?.length === 150);
    expect((await getJson(worker, "/v1/sessions/sign", team.api_key)).status).toBe("running");
  });

  it("validates events with the server's schemas before sending", async () => {
    const client = new SwitchboardClient({ baseUrl: worker.url, apiKey: "unused" });
    await expect(client.send({ id: "x", type: "step_completed", session_id: "s", topic_id: "t", data: { step: "design" } })).rejects.toThrow(/turns/);
  });
});

describe("retries", () => {
  let server: Server;
  let attempts: number[] = [];
  let plan: Array<{ status: number; headers?: Record<string, string> }> = [];
  let base = "";
  beforeAll(async () => {
    server = createServer((req, res) => {
      attempts.push(Date.now());
      req.resume();
      const next = plan.shift() ?? { status: 202 };
      res.writeHead(next.status, { "Content-Type": "application/json", ...next.headers });
      res.end(JSON.stringify(next.status === 202 ? { accepted: 1, request_id: "r" } : { title: "busy" }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("retries 5xx with backoff and honours Retry-After on 429", async () => {
    attempts = [];
    plan = [{ status: 503 }, { status: 429, headers: { "Retry-After": "1" } }];
    const client = new SwitchboardClient({ baseUrl: base, apiKey: "k", minDelayMs: 50, maxDelayMs: 5000 });
    expect(await client.send({ id: "r1", type: "update_status", session_id: "s", data: { status: "running" } })).toEqual({ delivered: "callback", accepted: 1 });
    expect(attempts).toHaveLength(3);
    expect((attempts[2] as number) - (attempts[1] as number)).toBeGreaterThanOrEqual(1000);
  });

  it("does not retry a refusal", async () => {
    attempts = [];
    plan = [{ status: 404 }];
    const client = new SwitchboardClient({ baseUrl: base, apiKey: "k", minDelayMs: 10 });
    await expect(client.send({ id: "r2", type: "update_status", session_id: "s", data: { status: "running" } })).rejects.toMatchObject({ status: 404 });
    expect(attempts).toHaveLength(1);
  });
});

describe("sentinel fallback over the S3 API", () => {
  let s3: Awaited<ReturnType<typeof startLocalS3>> | undefined;
  let s3Url = "";
  let dir = "";
  beforeAll(async () => {
    s3 = await startLocalS3();
    ({ url: s3Url, dir } = s3);
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it("writes each event as a signed sentinel when callbacks stay unreachable, and the sweep applies it", async () => {
    const team = await setUpTeam(worker, "sent", "t1");
    const secret = `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;
    const client = new SwitchboardClient({
      baseUrl: "http://127.0.0.1:9", // nothing listens here
      apiKey: team.api_key,
      signingSecret: secret,
      retries: 2,
      minDelayMs: 10,
      sentinel: { endpoint: s3Url, bucket: "switchboard", accessKeyId: "S3RVER", secretAccessKey: "S3RVER", teamId: team.team_id },
    });
    const event = { id: "lost-1", type: "step_started" as const, session_id: "sent", topic_id: "t1", data: { step: "design" } };
    const result = await client.send(event);
    expect(result).toMatchObject({ delivered: "sentinel", keys: [`callback-sentinels/alpha/${team.team_id}/sent/t1/lost-1.json`] });

    const reader = new AwsClient({ accessKeyId: "S3RVER", secretAccessKey: "S3RVER", service: "s3", region: "auto" });
    const object = await reader.fetch(`${s3Url}/switchboard/callback-sentinels/alpha/${team.team_id}/sent/t1/lost-1.json`);
    expect(object.status).toBe(200);
    const body = await object.text();
    expect(JSON.parse(body)).toMatchObject(event);
    expect(object.headers.get("x-amz-meta-webhook-signature")).toMatch(/^v1,/);

    // Hand the object to the Worker's own R2 (as R2's S3 API would have stored it) and fire
    // the cron. (wrangler's r2 object put sets no custom metadata: the signed path, metadata
    // and all, is test/node/sentinels-s3.test.ts; this team has no signing secret.)
    const { execFileSync } = await import("node:child_process");
    const file = join(dir, "sentinel.json");
    (await import("node:fs")).writeFileSync(file, body);
    const key = `callback-sentinels/alpha/${team.team_id}/sent/t1/lost-1.json`;
    execFileSync(join(process.cwd(), "node_modules", ".bin", "wrangler"), ["r2", "object", "put", `switchboard/${key}`, "--file", file, "--local", "--persist-to", worker.persist], { env: { ...process.env, CI: "1", WRANGLER_SEND_METRICS: "false" }, stdio: "pipe" });
    expect(await getJson(worker, "/v1/sentinels", team.api_key)).toMatchObject({ pending: 1 });
    const fired = await fetch(`${worker.url}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*`);
    await fired.body?.cancel();
    const topic = await eventually(() => getJson(worker, "/v1/sessions/sent/topics/t1", team.api_key), (t) => t.steps?.design?.status === "running");
    expect(topic.steps.design.status).toBe("running");
    expect(await getJson(worker, "/v1/sentinels", team.api_key)).toMatchObject({ pending: 0, rejected: 0 });
  });
});

describe("switchboard CLI", () => {
  const envFor = (key: string) => ({ SWITCHBOARD_URL: worker.url, SWITCHBOARD_API_KEY: key, AVAILABLE_TOKENS: "1,2,3", CLAUDE_OAUTH_TOKEN_1: "tok-one", CLAUDE_OAUTH_TOKEN_3: "tok-three" });

  it("emit sends one event from a shell", async () => {
    const team = await setUpTeam(worker, "emit", "t1");
    const { code, stdout } = await runCli(["emit", "--session", "emit", "--type", "update_status", "--data", '{"status":"running"}'], envFor(team.api_key));
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ delivered: "callback", accepted: 1 });
    await eventually(() => getJson(worker, "/v1/sessions/emit", team.api_key), (s) => s.status === "running");
    const bad = await runCli(["emit", "--session", "emit", "--type", "nope"], envFor(team.api_key));
    expect(bad.code).toBe(2);
  });

  it("emit and run print a refusal as `error: <title>: <detail>` with a hint that names the fix", async () => {
    const team = await setUpTeam(worker, "refused", "t1");
    const secret = `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64")}`;
    await team.post("/v1/team", team.api_key, { signing_secret: secret }, "PATCH");
    const unsigned = await runCli(["emit", "--session", "refused", "--type", "update_status", "--data", '{"status":"running"}'], envFor(team.api_key));
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toMatch(/^error: Invalid signature: The callback signature is not valid \(missing_headers\)\.$/m);
    expect(unsigned.stderr).toMatch(/^hint: the team signs its callbacks: set SWITCHBOARD_SIGNING_SECRET/m);
    expect(unsigned.stderr).not.toContain('{"type"');

    const wrong = await runCli(["run", "--session", "refused", "--topic", "t1", "design", "--", process.execPath, AGENT], { ...envFor(team.api_key), SWITCHBOARD_SIGNING_SECRET: `whsec_${Buffer.from("x".repeat(24)).toString("base64")}` });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^error: Invalid signature: /m);
    expect(wrong.stderr).toMatch(/^hint: SWITCHBOARD_SIGNING_SECRET does not sign as the team's signing secret does/m);

    const missing = await runCli(["emit", "--session", "no-such-session", "--type", "update_status", "--data", '{"status":"running"}'], { ...envFor(team.api_key), SWITCHBOARD_SIGNING_SECRET: secret });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: Not found: No session no-such-session\.$/m);
    expect(missing.stderr).toMatch(/^hint: the session does not exist in this key's team: create it first/m);
  });

  it("bad usage is exit 2 with one readable line and a hint, before anything is sent: an invalid event, an unusable signing secret, a busy-loop interval", async () => {
    const env = { SWITCHBOARD_URL: "http://127.0.0.1:9", SWITCHBOARD_API_KEY: "sb_unused", SWITCHBOARD_RETRIES: "0" };
    const noTopic = await runCli(["emit", "--session", "s", "--type", "step_started", "--data", '{"step":"design"}'], env);
    expect(noTopic.code).toBe(2);
    expect(noTopic.stderr).toMatch(/^error: the event is not valid: topic_id: .*$/m);
    expect(noTopic.stderr).toMatch(/^hint: a topic-level event needs --topic ID$/m);
    const noFields = await runCli(["emit", "--session", "s", "--type", "update_status"], env);
    expect(noFields.code).toBe(2);
    expect(noFields.stderr).toMatch(/^error: the event is not valid: data\.status: /m);
    expect(noFields.stderr).not.toContain('"code"');
    const secret = await runCli(["emit", "--session", "s", "--type", "update_status", "--data", '{"status":"running"}'], { ...env, SWITCHBOARD_SIGNING_SECRET: "whsec_bad" });
    expect(secret.code).toBe(2);
    expect(secret.stderr).toMatch(/^error: SWITCHBOARD_SIGNING_SECRET is not a usable Standard Webhooks secret$/m);
    expect(secret.stderr).not.toMatch(/retrying/);
    for (const flag of [["--poll-interval", "0"], ["--lease-heartbeat", "0"], ["--lease-heartbeat", "5000"]]) {
      const worker = await runCli(["worker", "--role", "executor", "--name", "w", ...flag, "--", "true"], env);
      expect(worker.code, flag.join(" ")).toBe(2);
      expect(worker.stderr).toMatch(new RegExp(`${flag[0]} takes a number of seconds from`));
    }
  });

  it("run all: reports each step, uploads chat logs, prints the timing summary", async () => {
    const team = await setUpTeam(worker, "runall", "t1");
    const { code, stdout } = await runCli(["run", "--session", "runall", "--topic", "t1", "all", "--", process.execPath, AGENT], { ...envFor(team.api_key), FAKE_SUMMARY: "1" });
    expect(code).toBe(0);
    for (const step of ["design", "prep", "explore", "review", "implement", "evaluate"]) expect(stdout).toMatch(new RegExp(`│ ${step}\\s+│ completed │ 4/\\d+`));
    expect(stdout).toMatch(/│ total\s+│\s+│ 24\/220/);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/runall/topics/t1", team.api_key), (t) => t.steps?.evaluate?.status === "completed");
    expect(topic.status).toBe("completed");
    expect(topic.steps.design).toMatchObject({ status: "completed", turns: 4, max_turns: 15, cost_usd: 0.1 });
    expect(topic.steps.design.tools).toEqual([{ name: "web", calls: 2, duration_ms: 30, errors: 0 }]);
    const log = await fetch(`${worker.url}/v1/sessions/runall/topics/t1/workspace/logs/design.log`, { headers: { Authorization: `Bearer ${team.api_key}` } });
    const text = await log.text();
    expect(text).toContain("agent working on design (budget 15, token tok-");
    expect(text).toContain("a line on stderr");
  }, 60_000);

  it("run stops at the first failure (the rest skipped), with JSON-line usage, and -t overrides the budget", async () => {
    const team = await setUpTeam(worker, "runfail", "t1");
    const { code, stdout } = await runCli(["run", "--session", "runfail", "--topic", "t1", "all", "-t", "7", "--", process.execPath, AGENT], { ...envFor(team.api_key), FAKE_FAIL_STEP: "prep" });
    expect(code).toBe(1);
    expect(stdout).toMatch(/│ prep\s+│ failed\s+│ 3\/7/);
    expect(stdout).toMatch(/│ explore\s+│ skipped\s+│ 0\/7 /);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/runfail/topics/t1", team.api_key), (t) => t.steps?.prep?.status === "failed");
    expect(topic.steps.prep).toMatchObject({ status: "failed", error: "exit code 3", turns: 3, max_turns: 7 });
    expect(topic.steps.design.tools).toEqual([{ name: "bash", calls: 2, duration_ms: 20, errors: 1 }]);
    expect(topic.steps.explore.status).toBe("pending");
  }, 60_000);

  it("Ctrl-C emits step_failed and exits non-zero", async () => {
    const team = await setUpTeam(worker, "runint", "t1");
    const { code } = await runCli(["run", "--session", "runint", "--topic", "t1", "explore", "--", process.execPath, AGENT], { ...envFor(team.api_key), FAKE_SLEEP_STEP: "explore" }, (out, child) => {
      if (out.includes("sleeping") && !child.killed) child.kill("SIGINT");
    });
    expect(code).toBe(130);
    const topic = await eventually(() => getJson(worker, "/v1/sessions/runint/topics/t1", team.api_key), (t) => t.steps?.explore?.status === "failed");
    expect(topic.steps.explore.error).toBe("interrupted");
  }, 60_000);
});

describe("credential rotation", () => {
  it("picks hour // 2 % n over the indices whose token is set", () => {
    const env = { AVAILABLE_TOKENS: "1,2,3", CLAUDE_OAUTH_TOKEN_1: "a", CLAUDE_OAUTH_TOKEN_3: "c" };
    const at = (h: number) => new Date(2026, 10, 24, h, 30);
    expect(pickRotatedToken(env, at(0))).toEqual({ index: "1", token: "a" });
    expect(pickRotatedToken(env, at(1))).toEqual({ index: "1", token: "a" });
    expect(pickRotatedToken(env, at(2))).toEqual({ index: "3", token: "c" });
    expect(pickRotatedToken(env, at(4))).toEqual({ index: "1", token: "a" });
    expect(pickRotatedToken({ AVAILABLE_TOKENS: "1" }, at(0))).toBeNull();
    expect(pickRotatedToken({}, at(0))).toBeNull();
  });
});
