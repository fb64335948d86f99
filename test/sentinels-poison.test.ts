import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { JSON_BODY_LIMIT } from "../src/app";
import { sweepSentinels } from "../src/cron/sentinels";
import {
  ATTEMPTS_META,
  LAST_ERROR_META,
  MAX_ATTEMPTS,
  NEXT_ATTEMPT_META,
  R2_KEY_LIMIT,
  REJECTED_PREFIX,
  SENTINEL_KEY_META,
  UPLOADED_META,
  rejectedKey,
  retryDelayMs,
  sentinelKey,
} from "../src/domain/sentinel";
import { signPayload } from "../src/lib/standard-webhooks";
import { call, createTeam, json, sessionWithTopic, stepEvent } from "./helpers";

type Event = { id: string; session_id: string; topic_id?: string };

async function writeSentinel(team: string, event: Event, meta: Record<string, string> = {}, raw?: string) {
  const key = sentinelKey({ team_id: team, session_id: event.session_id, topic_id: event.topic_id ?? null, event_id: event.id });
  await env.BUCKET.put(key, raw ?? JSON.stringify(event), { customMetadata: meta, httpMetadata: { contentType: "application/json" } });
  return key;
}

/** A stored signing secret that does not decrypt: every sentinel of the team fails the same way, every time. */
async function breakSigningSecret(team: string) {
  await env.DB.prepare("UPDATE teams SET signing_secret = ? WHERE id = ?").bind("v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAA", team).run();
}

async function pendingKeys(team: string): Promise<string[]> {
  return (await env.BUCKET.list({ prefix: `callback-sentinels/alpha/${team}/` })).objects.map((o) => o.key);
}

// Each test counts what one sweep did: none leaves sentinels for the next.
afterEach(async () => {
  for (;;) {
    const page = await env.BUCKET.list({ prefix: "callback-sentinels/alpha/" });
    if (page.objects.length === 0) break;
    await env.BUCKET.delete(page.objects.map((o) => o.key));
  }
});

const newSecret = () => `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;

describe("the sweep applies the HTTPS path's input limits", () => {
  it("rejects a sentinel over 1 MiB (without reading it), one nested 20,000 levels deep and one with a lone surrogate, at the first sweep, keeping each whole", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);

    const big = stepEvent(sid, tid, "step_started", { step: "design" });
    const bigRaw = JSON.stringify({ ...big, data: { step: "design", pad: "x".repeat(JSON_BODY_LIMIT) } });
    const bigKey = await writeSentinel(team.team_id, big, {}, bigRaw);

    const deep = stepEvent(sid, tid, "step_started", { step: "prep" });
    const deepRaw = JSON.stringify({ ...deep, data: { step: "prep", nested: "@" } }).replace('"@"', `${"[".repeat(20_000)}1${"]".repeat(20_000)}`);
    const deepKey = await writeSentinel(team.team_id, deep, {}, deepRaw);
    // The same body over HTTPS is a 400.
    const https = await call("/v1/callbacks", { method: "POST", key: team.api_key, headers: { "Content-Type": "application/json" }, body: deepRaw });
    expect(https.status).toBe(400);
    await https.body?.cancel();

    const lone = stepEvent(sid, tid, "step_started", { step: "review" });
    const loneRaw = JSON.stringify({ ...lone, data: { step: "review", note: "@" } }).replace('"@"', '"x\\ud800"');
    const loneKey = await writeSentinel(team.team_id, lone, {}, loneRaw);

    // Just within the limits: applied.
    const fine = stepEvent(sid, tid, "step_started", { step: "explore" });
    await writeSentinel(team.team_id, fine, {}, JSON.stringify({ ...fine, data: { step: "explore", nested: JSON.parse(`${"[".repeat(28)}1${"]".repeat(28)}`) } }));

    const report = await sweepSentinels(env);
    expect(report).toMatchObject({ applied: 1, rejected: 3, retrying: 0 });
    expect(await pendingKeys(team.team_id)).toEqual([]);

    const bigRejected = await env.BUCKET.get(await rejectedKey(bigKey));
    expect(bigRejected?.customMetadata?.reason).toBe(`the body is ${bigRejected?.size} bytes, over the ${JSON_BODY_LIMIT}-byte limit of a JSON body`);
    expect(await bigRejected?.text()).toBe(bigRaw);
    const deepRejected = await env.BUCKET.get(await rejectedKey(deepKey));
    expect(deepRejected?.customMetadata?.reason).toMatch(/^the JSON body nests deeper than 32 levels \(at data\.nested(\.0)+\)$/);
    expect(await deepRejected?.text()).toBe(deepRaw);
    expect((await env.BUCKET.get(await rejectedKey(loneKey)))?.customMetadata?.reason).toMatch(/^Not valid Unicode: a lone surrogate .* \(at data\.note\)$/);

    // Nothing left to retry.
    expect(await sweepSentinels(env)).toMatchObject({ applied: 0, rejected: 0, retrying: 0 });
    expect(await json(await call("/v1/sentinels", { key: team.api_key }))).toEqual({ pending: 0, retrying: 0, rejected: 3, truncated: false });
  });

  it("rejects a sentinel whose key breaks the id rule, naming the segment", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const event = stepEvent(sid, tid, "step_started", { step: "design" }, "e/1");
    const key = `callback-sentinels/alpha/${team.team_id}/${sid}/${tid}/e%2F1.json`;
    await env.BUCKET.put(key, JSON.stringify(event));
    expect(await sweepSentinels(env)).toMatchObject({ rejected: 1, applied: 0 });
    expect((await env.BUCKET.head(await rejectedKey(key)))?.customMetadata?.reason).toContain('the event id "e%2F1" is not an id');
  });
});

describe("a sentinel that keeps failing", () => {
  it("is tried again on later sweeps, waiting longer each time, then rejected with the last error after MAX_ATTEMPTS, its body and signature kept", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const secret = newSecret();
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: secret } })).json();
    const event = stepEvent(sid, tid, "step_started", { step: "design" });
    const raw = JSON.stringify(event);
    const ts = Math.floor(Date.now() / 1000);
    const signature = { "webhook-id": "w1", "webhook-timestamp": String(ts), "webhook-signature": await signPayload(secret, "w1", ts, raw) };
    const key = await writeSentinel(team.team_id, event, signature, raw);
    const uploaded = (await env.BUCKET.head(key))?.uploaded.toISOString();
    await breakSigningSecret(team.team_id);

    let now = Date.parse("2030-01-01T00:00:00Z");
    for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
      expect(await sweepSentinels(env, { now })).toMatchObject({ applied: 0, rejected: 0, retrying: 1 });
      const object = await env.BUCKET.get(key);
      expect(object?.customMetadata).toEqual({
        ...signature,
        [UPLOADED_META]: uploaded,
        [ATTEMPTS_META]: String(attempt),
        [NEXT_ATTEMPT_META]: new Date(now + retryDelayMs(attempt)).toISOString(),
        [LAST_ERROR_META]: expect.stringMatching(/\S/),
      });
      expect(object?.httpMetadata?.contentType).toBe("application/json");
      expect(await object?.text()).toBe(raw);
      // Not read again until its time comes.
      expect(await sweepSentinels(env, { now: now + retryDelayMs(attempt) - 1 })).toMatchObject({ retrying: 0, deferred: 1 });
      expect((await env.BUCKET.head(key))?.customMetadata?.[ATTEMPTS_META]).toBe(String(attempt));
      expect(await json(await call("/v1/sentinels", { key: team.api_key }))).toEqual({ pending: 1, retrying: 1, rejected: 0, truncated: false });
      now += retryDelayMs(attempt);
    }
    expect(await sweepSentinels(env, { now })).toMatchObject({ applied: 0, rejected: 1, retrying: 0 });
    expect(await pendingKeys(team.team_id)).toEqual([]);
    const rejected = await env.BUCKET.get(await rejectedKey(key));
    expect(rejected?.customMetadata).toMatchObject({ ...signature, [ATTEMPTS_META]: String(MAX_ATTEMPTS) });
    expect(rejected?.customMetadata?.reason).toMatch(new RegExp(`^failed ${MAX_ATTEMPTS} times; the last error: \\S`));
    expect(await rejected?.text()).toBe(raw);
    expect(await json(await call("/v1/sentinels", { key: team.api_key }))).toEqual({ pending: 0, retrying: 0, rejected: 1, truncated: false });
  });

  it("of a signed team waits untouched while SECRETS_KEY is unusable (no try counted, never rejected for it), and is applied once the key is back", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const secret = newSecret();
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: secret } })).json();
    const event = stepEvent(sid, tid, "step_started", { step: "design" });
    const raw = JSON.stringify(event);
    const ts = Math.floor(Date.now() / 1000);
    const signature = { "webhook-id": "w1", "webhook-timestamp": String(ts), "webhook-signature": await signPayload(secret, "w1", ts, raw) };
    const key = await writeSentinel(team.team_id, event, signature, raw);
    const now = Date.parse("2030-01-01T00:00:00Z");
    for (let sweep = 0; sweep < MAX_ATTEMPTS + 1; sweep++) {
      for (const secretsKey of [undefined, "short"]) {
        expect(await sweepSentinels({ ...env, SECRETS_KEY: secretsKey } as Env, { now: now + sweep * 60_000 })).toMatchObject({ applied: 0, rejected: 0, retrying: 0, deferred: 1 });
      }
    }
    expect((await env.BUCKET.head(key))?.customMetadata).toEqual(signature);
    expect(await sweepSentinels(env, { now })).toMatchObject({ applied: 1, rejected: 0 });
    expect(await pendingKeys(team.team_id)).toEqual([]);
  });

  it("is applied on a later sweep once the failure is gone; two sweeps failing on it at once count one try", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: newSecret() } })).json();
    const key = await writeSentinel(team.team_id, stepEvent(sid, tid, "step_started", { step: "design" }));
    await breakSigningSecret(team.team_id);
    const now = Date.parse("2030-01-01T00:00:00Z");
    const [a, b] = await Promise.all([sweepSentinels(env, { now }), sweepSentinels(env, { now })]);
    // Each failed on it, or found it rewritten or waiting; one try is counted either way.
    expect(a.retrying + a.skipped + a.deferred + b.retrying + b.skipped + b.deferred).toBe(2);
    expect((await env.BUCKET.head(key))?.customMetadata?.[ATTEMPTS_META]).toBe("1");

    await env.DB.prepare("UPDATE teams SET signing_secret = NULL WHERE id = ?").bind(team.team_id).run();
    expect(await sweepSentinels(env, { now: now + retryDelayMs(1) })).toMatchObject({ applied: 1, rejected: 0 });
    expect(await pendingKeys(team.team_id)).toEqual([]);
    const topic = await json(await call(`/v1/sessions/${sid}/topics/${tid}`, { key: team.api_key }));
    expect(topic.steps.design.status).toBe("running");
  });

  it("ignores attempt counts and waits an agent wrote that no sweep would", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    const now = Date.parse("2030-01-01T00:00:00Z");
    await writeSentinel(team.team_id, stepEvent(sid, tid, "step_started", { step: "design" }), { [ATTEMPTS_META]: "-100", [NEXT_ATTEMPT_META]: new Date(now + 365 * 86_400_000).toISOString() });
    expect(await sweepSentinels(env, { now })).toMatchObject({ applied: 1, deferred: 0 });
  });
});

describe("stuck sentinels do not starve the others", () => {
  it("another team's sentinel is applied in the same sweep as many failing ones sorted before it", async () => {
    const [x, y] = [await createTeam(), await createTeam()];
    // The failing team is the one whose sentinels sort first.
    const [stuck, good] = x.team_id < y.team_id ? [x, y] : [y, x];
    const s = await sessionWithTopic(stuck.api_key);
    await (await call("/v1/team", { method: "PATCH", key: stuck.api_key, json: { signing_secret: newSecret() } })).json();
    for (let i = 0; i < 30; i++) await writeSentinel(stuck.team_id, stepEvent(s.sid, s.tid, "step_started", { step: "design" }));
    await breakSigningSecret(stuck.team_id);
    const g = await sessionWithTopic(good.api_key);
    await writeSentinel(good.team_id, stepEvent(g.sid, g.tid, "step_started", { step: "design" }));

    const report = await sweepSentinels(env, { limit: 10 });
    expect(report.applied).toBe(1);
    expect(await pendingKeys(good.team_id)).toEqual([]);
    expect(report.retrying).toBe(9);
    expect(await pendingKeys(stuck.team_id)).toHaveLength(30);
  });

  it("a team's failing sentinels are passed over in later sweeps, so its own later ones are reached", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    await (await call("/v1/team", { method: "PATCH", key: team.api_key, json: { signing_secret: newSecret() } })).json();
    for (let i = 0; i < 25; i++) await writeSentinel(team.team_id, stepEvent(sid, tid, "step_started", { step: "design" }));
    await breakSigningSecret(team.team_id);
    const now = Date.parse("2030-01-01T00:00:00Z");
    const reports = [];
    for (let i = 0; i < 4; i++) reports.push(await sweepSentinels(env, { now, limit: 10 }));
    expect(reports.map((r) => r.retrying)).toEqual([10, 10, 5, 0]);
    expect(reports.map((r) => r.deferred)).toEqual([0, 10, 20, 25]);
  });

  it("starts nothing past its time budget", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    await writeSentinel(team.team_id, stepEvent(sid, tid, "step_started", { step: "design" }));
    expect(await sweepSentinels(env, { timeBudgetMs: 0 })).toMatchObject({ applied: 0, rejected: 0, retrying: 0 });
    expect(await sweepSentinels(env)).toMatchObject({ applied: 1 });
  });
});

const utf8Bytes = (s: string) => new TextEncoder().encode(s).byteLength;

describe("a sentinel whose key leaves no room for rejected/ in front of it", () => {
  it("is rejected at the first sweep under a hashed name in its team's rejected folder, its key in the copy's metadata", async () => {
    const team = await createTeam();
    // Ids the client takes (the event id encoded): the key is within 9 bytes of R2's 1,024.
    const event = { id: "€".repeat(200), type: "step_started", session_id: "s".repeat(80), topic_id: "t".repeat(77), data: { step: "design" } };
    const raw = JSON.stringify(event);
    const key = await writeSentinel(team.team_id, event, { "webhook-id": "w1" }, raw);
    expect(utf8Bytes(key)).toBeGreaterThan(R2_KEY_LIMIT - "rejected/".length);
    expect(utf8Bytes(key)).toBeLessThanOrEqual(R2_KEY_LIMIT);

    // No such session: refused, and moved at once, not left pending.
    expect(await sweepSentinels(env)).toMatchObject({ applied: 0, rejected: 1, retrying: 0, skipped: 0 });
    expect(await pendingKeys(team.team_id)).toEqual([]);
    const target = await rejectedKey(key);
    expect(target).toMatch(new RegExp(`^${REJECTED_PREFIX}alpha/${team.team_id}/~sha256/[0-9a-f]{64}\\.json$`));
    const copy = await env.BUCKET.get(target);
    expect(copy?.customMetadata).toMatchObject({ "webhook-id": "w1", [SENTINEL_KEY_META]: key, reason: `no session ${event.session_id} in team ${team.team_id}` });
    expect(await copy?.text()).toBe(raw);
    expect(await json(await call("/v1/sentinels", { key: team.api_key }))).toEqual({ pending: 0, retrying: 0, rejected: 1, truncated: false });
  });

  it("is rejected with only the sweep's metadata when its own would not fit next to it (the key included)", async () => {
    const team = await createTeam();
    const event = { id: "€".repeat(200), type: "step_started", session_id: "s".repeat(80), topic_id: "t".repeat(77), data: { step: "design" } };
    // Within the 4 KiB a sentinel may carry by UTF-8, but near R2's 8 KiB as the local
    // emulation counts it (two bytes a character, past Latin-1): no room for the reason and key.
    const key = await writeSentinel(team.team_id, event, { "webhook-id": "w1", note: `${"a".repeat(4000)}€` });
    expect(await sweepSentinels(env)).toMatchObject({ rejected: 1, retrying: 0, skipped: 0 });
    const copy = await env.BUCKET.head(await rejectedKey(key));
    expect(copy?.customMetadata).toEqual({ reason: `no session ${event.session_id} in team ${team.team_id}`, rejected_at: expect.any(String), [SENTINEL_KEY_META]: key });
  });

  it("keeps its plain rejected/ name when that fits, and a distinct hashed name per key otherwise", async () => {
    expect(await rejectedKey("callback-sentinels/alpha/team_1/s1/-/e1.json")).toBe("callback-sentinels/rejected/alpha/team_1/s1/-/e1.json");
    const long = (e: string) => `callback-sentinels/alpha/team_1/${"s".repeat(128)}/${"t".repeat(128)}/${e}${"x".repeat(800)}.json`;
    const [a, b] = [await rejectedKey(long("a")), await rejectedKey(long("b"))];
    expect(a).not.toBe(b);
    expect(a.startsWith(`${REJECTED_PREFIX}alpha/team_1/~sha256/`)).toBe(true);
    // No team folder to keep it in: still under rejected/alpha/, in no team's folder.
    expect(await rejectedKey(`callback-sentinels/alpha/${"n".repeat(1000)}.json`)).toMatch(/^callback-sentinels\/rejected\/alpha\/~sha256\/[0-9a-f]{64}\.json$/);
  });
});

/** The test bucket, except that writes under rejected/ fail until `heal()`: R2 failing to move a sentinel. */
function failingMoves() {
  let failing = true;
  const bucket = env.BUCKET;
  const BUCKET = {
    head: (key: string) => bucket.head(key),
    get: (key: string, options?: R2GetOptions) => bucket.get(key, options),
    put: (key: string, value: ArrayBuffer | ReadableStream, options?: R2PutOptions) =>
      failing && key.startsWith(REJECTED_PREFIX) ? Promise.reject(new Error("injected: R2 failed the put")) : bucket.put(key, value, options),
    delete: (keys: string | string[]) => bucket.delete(keys),
    list: (options?: R2ListOptions) => bucket.list(options),
  } as unknown as R2Bucket;
  return { env: { ...env, BUCKET } as Env, heal: () => (failing = false) };
}

describe("a sentinel R2 fails to move to rejected/", () => {
  it("counts each failed move as a try, waits between them (never read every sweep), and is moved once R2 takes it", async () => {
    const team = await createTeam();
    const { sid, tid } = await sessionWithTopic(team.api_key);
    // One refused after its body was read (no such session), one before (its key).
    const unknown = { ...stepEvent(sid, tid, "step_started", { step: "design" }), session_id: "nobody" };
    const unknownKey = await writeSentinel(team.team_id, unknown);
    const badKey = `callback-sentinels/alpha/${team.team_id}/${sid}/${tid}/e%2F1.json`;
    const badRaw = JSON.stringify(stepEvent(sid, tid, "step_started", { step: "design" }, "e/1"));
    await env.BUCKET.put(badKey, badRaw);
    const broken = failingMoves();

    let now = Date.parse("2030-01-01T00:00:00Z");
    for (let attempt = 1; attempt <= MAX_ATTEMPTS + 1; attempt++) {
      expect(await sweepSentinels(broken.env, { now })).toMatchObject({ rejected: 0, retrying: 2, skipped: 0 });
      const counted = Math.min(attempt, MAX_ATTEMPTS);
      for (const key of [unknownKey, badKey]) {
        const meta = (await env.BUCKET.head(key))?.customMetadata;
        expect(meta?.[ATTEMPTS_META]).toBe(String(counted));
        expect(meta?.[NEXT_ATTEMPT_META]).toBe(new Date(now + retryDelayMs(counted)).toISOString());
        expect(meta?.[LAST_ERROR_META]).toContain("moving it to rejected/ failed: injected: R2 failed the put");
      }
      // Passed over, unread, until its wait is over.
      expect(await sweepSentinels(broken.env, { now: now + retryDelayMs(counted) - 1 })).toMatchObject({ retrying: 0, deferred: 2 });
      now += retryDelayMs(counted);
    }
    expect(await json(await call("/v1/sentinels", { key: team.api_key }))).toEqual({ pending: 2, retrying: 2, rejected: 0, truncated: false });

    broken.heal();
    expect(await sweepSentinels(broken.env, { now })).toMatchObject({ rejected: 2, retrying: 0 });
    expect(await pendingKeys(team.team_id)).toEqual([]);
    expect((await env.BUCKET.get(await rejectedKey(unknownKey)))?.customMetadata?.reason).toBe(`no session nobody in team ${team.team_id}`);
    const bad = await env.BUCKET.get(await rejectedKey(badKey));
    expect(bad?.customMetadata?.reason).toContain('the event id "e%2F1" is not an id');
    expect(await bad?.text()).toBe(badRaw);
  });
});
