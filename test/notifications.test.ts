import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { slackEscape, urlHint } from "../src/domain/notifications";
import worker from "../src/index";
import { verifyPayload } from "../src/lib/standard-webhooks";
import { call, createKey, createTeam, eventually, expectProblem, json } from "./helpers";
import { claim, createTask, leaseCall, past, setTimes } from "./task-helpers";
import { setTeam } from "./worker-helpers";

const RECEIVER = `http://127.0.0.1:${inject("receiverPort")}`;
const runCron = () => worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, createExecutionContext());

type Received = { headers: Record<string, string>; body: string; status: number };
const received = async (name: string): Promise<Received[]> => (await fetch(`${RECEIVER}/received/${name}`)).json();
const hook = (name: string, query = "") => `${RECEIVER}/hook/${name}${query}`;

async function team() {
  const t = await createTeam();
  return { operator: t.api_key, agent: await createKey(t.api_key, ["agent"]), reader: await createKey(t.api_key, ["read"]) };
}

async function addChannel(operator: string, body: Record<string, unknown>) {
  const res = await call("/v1/notifications", { method: "POST", key: operator, json: body });
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return JSON.parse(text);
}

async function deliveries(key: string, nid: string) {
  return (await json(await call(`/v1/notifications/${nid}/deliveries`, { key }))).items as any[];
}

/** A task failed for good (one attempt allowed). */
async function failTask(agent: string, title: string) {
  const task = await createTask(agent, { title, max_attempts: 1 });
  const held = await claim(agent);
  expect(held?.id).toBe(task.id);
  expect((await leaseCall(agent, task.id, "fail", { lease_id: held?.lease.id, result: "boom" }).then(json)).status).toBe("failed");
  return task;
}

describe("notifications: registering channels", () => {
  it("stores the URL encrypted, shows only a hint, infers Slack and Discord, and gives JSON channels a signing secret once", async () => {
    const { operator, reader } = await team();
    const slack = await addChannel(operator, { url: "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX1234" });
    expect(slack).toMatchObject({ id: expect.stringMatching(/^nch_/), format: "slack", name: "hooks.slack.com", url_hint: "https://hooks.slack.com/…1234", events: ["question.asked", "task.failed", "budget.reached"], signed: false, signing_secret: null });
    const discord = await addChannel(operator, { url: "https://discord.com/api/webhooks/123/abcdef", events: ["task.failed"] });
    expect(discord).toMatchObject({ format: "discord", events: ["task.failed"] });
    const plain = await addChannel(operator, { url: hook("plain"), name: "ops" });
    expect(plain).toMatchObject({ format: "json", name: "ops", signed: true, signing_secret: expect.stringMatching(/^whsec_/) });

    const listed = await json(await call("/v1/notifications", { key: reader }));
    expect(listed.items.map((c: any) => c.id)).toEqual([slack.id, discord.id, plain.id]);
    expect(JSON.stringify(listed)).not.toContain("XXXXsecretXXXX");
    expect(JSON.stringify(listed)).not.toContain(plain.signing_secret);
    expect(await json(await call(`/v1/notifications/${plain.id}`, { key: reader }))).not.toHaveProperty("signing_secret");
    const stored = await env.DB.prepare("SELECT url, signing_secret FROM notification_channels WHERE id IN (?, ?)").bind(slack.id, plain.id).all<{ url: string; signing_secret: string | null }>();
    for (const row of stored.results) {
      expect(row.url).not.toContain("hooks.slack.com");
      expect(row.url).not.toContain("127.0.0.1");
      expect(row.signing_secret ?? "").not.toContain("whsec_");
    }
  });

  it("refuses bad channels with 400 and changes nothing; read keys cannot register or delete", async () => {
    const { operator, reader } = await team();
    for (const [body, path] of [
      [{ url: "http://example.com/hook" }, "url"],
      [{ url: "not a url" }, "url"],
      [{ url: "https://user:pw@example.com/hook" }, "url"],
      [{ url: "https://example.com/hook", events: ["task.completed"] }, "events.0"],
      [{ url: "https://example.com/hook", events: [] }, "events"],
      [{ url: "https://example.com/hook", format: "teams" }, "format"],
      [{}, "url"],
    ] as const) {
      const problem = await expectProblem(await call("/v1/notifications", { method: "POST", key: operator, json: body }), 400);
      expect(problem.errors?.map((e) => e.path)).toContain(path);
    }
    await expectProblem(await call("/v1/notifications", { method: "POST", key: reader, json: { url: "https://example.com/hook" } }), 403);
    expect((await json(await call("/v1/notifications", { key: reader }))).items).toEqual([]);
  });

  it("deletes a channel with its history; another team's channel is 404 everywhere", async () => {
    const a = await team();
    const b = await team();
    const channel = await addChannel(a.operator, { url: hook("deleted") });
    for (const [method, path] of [
      ["GET", `/v1/notifications/${channel.id}`],
      ["GET", `/v1/notifications/${channel.id}/deliveries`],
      ["POST", `/v1/notifications/${channel.id}/test`],
      ["DELETE", `/v1/notifications/${channel.id}`],
    ] as const) {
      await expectProblem(await call(path, { method, key: b.operator }), 404);
    }
    expect((await call(`/v1/notifications/${channel.id}`, { method: "DELETE", key: a.operator })).status).toBe(204);
    await expectProblem(await call(`/v1/notifications/${channel.id}`, { key: a.reader }), 404);
  });

  it("allows at most 20 channels a team", async () => {
    const { operator } = await team();
    for (let i = 0; i < 20; i++) await addChannel(operator, { url: `https://example.com/hook/${i}` });
    await expectProblem(await call("/v1/notifications", { method: "POST", key: operator, json: { url: "https://example.com/hook/21" } }), 409);
  });

  it("never passes 20 channels when creates race", async () => {
    const { operator, reader } = await team();
    const statuses = await Promise.all(
      Array.from({ length: 30 }, (_, i) => call("/v1/notifications", { method: "POST", key: operator, json: { url: `https://example.com/race/${i}` } }).then((r) => r.status)),
    );
    expect(statuses.filter((s) => s === 201)).toHaveLength(20);
    expect(statuses.filter((s) => s === 409)).toHaveLength(10);
    expect((await json(await call("/v1/notifications", { key: reader }))).items).toHaveLength(20);
  });
});

describe("notifications: deliveries", () => {
  it("sends a failed task to a JSON channel, signed with Standard Webhooks, and records it delivered", async () => {
    const { operator, agent, reader } = await team();
    const channel = await addChannel(operator, { url: hook("json-failed") });
    const task = await failTask(agent, "Deploy the fix");
    const [got] = await eventually(() => received("json-failed"), (r) => r.length === 1);
    if (!got) throw new Error("nothing received");
    const body = JSON.parse(got.body);
    expect(body).toMatchObject({ type: "task.failed", data: { task: { id: task.id, title: "Deploy the fix", status: "failed", attempts: 1 } }, text: expect.stringContaining("Task failed (boom): Deploy the fix") });
    expect(got.headers["content-type"]).toBe("application/json");
    const verified = await verifyPayload(channel.signing_secret, { id: got.headers["webhook-id"] ?? null, timestamp: got.headers["webhook-timestamp"] ?? null, signature: got.headers["webhook-signature"] ?? null }, got.body, Math.floor(Date.now() / 1000));
    expect(verified).toEqual({ ok: true });
    const [delivery] = await eventually(() => deliveries(reader, channel.id), (d) => d[0]?.status === "delivered");
    expect(delivery).toMatchObject({ event_type: "task.failed", status: "delivered", attempts: 1, last_status_code: 200, last_error: null, delivered_at: expect.any(String) });
    expect(got.headers["webhook-id"]).toBe(delivery.id);
  });

  it("sends a question to Slack-shaped and Discord-shaped channels as text, only to channels that want it", async () => {
    const { operator, agent } = await team();
    await addChannel(operator, { url: hook("slack-q"), format: "slack" });
    await addChannel(operator, { url: hook("discord-q"), format: "discord", events: ["question.asked"] });
    await addChannel(operator, { url: hook("not-q"), format: "slack", events: ["budget.reached"] });
    const task = await createTask(agent);
    const held = await claim(agent, "executor", "exec-alpha");
    // Agents' text may hold Slack markup: it is shown as written, it pings and links nothing.
    const asked = await json(await call("/v1/questions", { method: "POST", key: agent, json: { worker_id: "exec-alpha", task_id: task.id, text: "Postgres or SQLite? <!channel> & <https://evil.example|invoice>" } }));
    const [slack] = await eventually(() => received("slack-q"), (r) => r.length === 1);
    const [discord] = await eventually(() => received("discord-q"), (r) => r.length === 1);
    expect(JSON.parse(slack?.body ?? "")).toEqual({ text: `❓ exec-alpha asks about task ${task.id}:\nPostgres or SQLite? &lt;!channel&gt; &amp; &lt;https://evil.example|invoice&gt;\nAnswer with: switchboard respond ${asked.id} "…"` });
    expect(JSON.parse(discord?.body ?? "")).toEqual({ content: expect.stringContaining("Postgres or SQLite?"), allowed_mentions: { parse: [] } });
    expect(held).not.toBeNull();
    // The third channel wants only the budget: a later event still finds nothing sent to it.
    await failTask(agent, "marker");
    await eventually(() => received("slack-q"), (r) => r.length === 2);
    expect(await received("not-q")).toEqual([]);
  });

  it("says why a task failed: the start of the worker's result, on one line, in Slack's text", async () => {
    const { operator, agent } = await team();
    await addChannel(operator, { url: hook("slack-why"), format: "slack", events: ["task.failed"] });
    const task = await failTask(agent, "Run the migration");
    const [got] = await eventually(() => received("slack-why"), (r) => r.length === 1);
    expect(JSON.parse(got?.body ?? "")).toEqual({ text: `❌ Task failed (boom): Run the migration (${task.id}), role executor, after 1 of 1 attempts.` });

    // A long Markdown report: its first 300 characters, whitespace folded, escaped for Slack.
    const long = await createTask(agent, { title: "Long report", max_attempts: 1 });
    const held = await claim(agent);
    const result = `## Tests <failed>\n\n${"x".repeat(400)}`;
    await json(await leaseCall(agent, long.id, "fail", { lease_id: held?.lease.id, result }));
    const texts = await eventually(() => received("slack-why"), (r) => r.length === 2);
    const reason = `## Tests <failed> ${"x".repeat(300 - 19)}…`;
    expect(Array.from(reason)).toHaveLength(300);
    expect(JSON.parse(texts[1]?.body ?? "").text).toBe(`❌ Task failed (${slackEscape(reason)}): Long report (${long.id}), role executor, after 1 of 1 attempts.`);
  });

  it("retries a failing receiver with backoff until it answers, and shows the attempts", async () => {
    const { operator, agent, reader } = await team();
    const channel = await addChannel(operator, { url: hook("flaky", "?fail=2&status=503"), format: "slack", events: ["task.failed"] });
    await failTask(agent, "flaky one");
    const got = await eventually(() => received("flaky"), (r) => r.length === 3, 15_000);
    expect(got.map((r) => r.status)).toEqual([503, 503, 200]);
    const [delivery] = await eventually(() => deliveries(reader, channel.id), (d) => d[0]?.status === "delivered");
    expect(delivery).toMatchObject({ attempts: 3, last_status_code: 200, status: "delivered" });
  }, 30_000);

  it("gives up at once on an answer that will not change (404), and after 5 tries on one that might", async () => {
    const { operator, agent, reader } = await team();
    const gone = await addChannel(operator, { url: hook("gone", "?status=404"), format: "slack", events: ["task.failed"] });
    const down = await addChannel(operator, { url: hook("down", "?status=500"), format: "slack", events: ["task.failed"] });
    await failTask(agent, "nobody hears");
    const [failed] = await eventually(() => deliveries(reader, gone.id), (d) => d[0]?.status === "failed");
    expect(failed).toMatchObject({ attempts: 1, last_status_code: 404, last_error: "HTTP 404" });
    const [exhausted] = await eventually(() => deliveries(reader, down.id), (d) => d[0]?.status === "failed", 25_000);
    expect(exhausted).toMatchObject({ attempts: 5, last_status_code: 500, last_error: "HTTP 500; gave up after 5 attempts" });
    expect((await received("down")).length).toBe(5);
    expect((await received("gone")).length).toBe(1);
  }, 40_000);

  it("announces the spent budget once a day, and a lease the cron expires for good as a failed task", async () => {
    const { operator, agent, reader } = await team();
    const channel = await addChannel(operator, { url: hook("budget-and-cron"), format: "slack" });
    await setTeam(operator, { daily_budget_usd: 1 });
    const spent = await createTask(agent);
    const held = await claim(agent);
    await json(await leaseCall(agent, spent.id, "complete", { lease_id: held?.lease.id, cost_usd: 2 }));
    await createTask(agent);
    for (let i = 0; i < 2; i++) expect((await call("/v1/tasks/claim", { method: "POST", key: agent, json: { worker_id: "w1", role: "executor" } }).then(async (r) => (await r.text(), r.status)))).toBe(429);
    await setTeam(operator, { daily_budget_usd: null });
    const last = await createTask(agent, { title: "silent worker", max_attempts: 1, role: "docs" });
    const lastHeld = await claim(agent, "docs", "w2");
    expect(lastHeld?.id).toBe(last.id);
    await setTimes(last.id, { lease_expires_at: past() });
    await runCron();
    const got = await eventually(() => received("budget-and-cron"), (r) => r.length === 2);
    const texts = got.map((r) => JSON.parse(r.body).text as string).sort();
    expect(texts[0]).toBe(`❌ Task failed (lease expired): silent worker (${last.id}), role docs, after 1 of 1 attempts.`);
    expect(texts[1]).toMatch(/^💸 Daily budget of \$1\.00 reached: \$2\.00 spent on \d{4}-\d{2}-\d{2} \(UTC\)/);
    expect((await deliveries(reader, channel.id)).map((d) => d.event_type).sort()).toEqual(["budget.reached", "task.failed"]);
  });

  it("sends a test message on request", async () => {
    const { operator, reader } = await team();
    const channel = await addChannel(operator, { url: hook("test-msg"), format: "discord" });
    const res = await call(`/v1/notifications/${channel.id}/test`, { method: "POST", key: operator });
    expect(res.status).toBe(202);
    expect(await json(res)).toMatchObject({ event_type: "notification.test", status: "pending", attempts: 0 });
    const [got] = await eventually(() => received("test-msg"), (r) => r.length === 1);
    expect(JSON.parse(got?.body ?? "")).toMatchObject({ content: "✅ Switchboard test notification: this channel works." });
    await eventually(() => deliveries(reader, channel.id), (d) => d[0]?.status === "delivered");
  });

  it("the cron sends again a delivery whose queue message never went out, and forgets ended ones after 30 days", async () => {
    const { operator, reader } = await team();
    const channel = await addChannel(operator, { url: hook("cron-kept"), format: "slack" });
    const teamId = (await json(await call("/v1/team", { key: operator }))).id as string;
    const longAgo = new Date(Date.now() - 20 * 60_000).toISOString();
    const event = { id: "tev_stalled", type: "task.failed", at: longAgo, data: { task: { id: "task_x", title: "stalled one", role: "executor", attempts: 3, max_attempts: 3 } } };
    await env.DB.prepare("INSERT INTO notification_deliveries (team_id, id, channel_id, event_id, event_type, event, status, attempts, created_at, updated_at) VALUES (?, 'ndl_stalled', ?, ?, ?, ?, 'pending', 0, ?, ?)")
      .bind(teamId, channel.id, event.id, event.type, JSON.stringify(event), longAgo, longAgo)
      .run();
    await runCron();
    const [got] = await eventually(() => received("cron-kept"), (r) => r.length === 1);
    expect(JSON.parse(got?.body ?? "").text).toContain("stalled one");
    await eventually(() => deliveries(reader, channel.id), (d) => d[0]?.status === "delivered");

    const old = new Date(Date.now() - 31 * 86_400_000).toISOString();
    await env.DB.prepare("UPDATE notification_deliveries SET updated_at = ? WHERE id = 'ndl_stalled'").bind(old).run();
    await runCron();
    expect(await deliveries(reader, channel.id)).toEqual([]);
  });
});

describe("a channel's url_hint", () => {
  it("ends with the URL's last 4 characters as a person reads them, never a cut %-escape", () => {
    expect(urlHint(new URL("https://hooks.slack.com/services/T0/B0/abcd1234"))).toBe("https://hooks.slack.com/…1234");
    // "…" is %E2%80%A6 in the URL: shown as the character, not as "0%A6".
    expect(urlHint(new URL("https://hooks.slack.com/services/T…/B…/…"))).toBe("https://hooks.slack.com/…B…/…");
    expect(urlHint(new URL("https://example.com/hook/caf%C3%A9s"))).toBe("https://example.com/…afés");
    // A stray % that is no escape: shown as written.
    expect(urlHint(new URL("https://example.com/xa%zz"))).toBe("https://example.com/…a%zz");
    expect(urlHint(new URL("https://example.com/abc"))).toBe("https://example.com/…");
  });
});
