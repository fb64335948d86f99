import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AwsClient } from "aws4fetch";
// Wrangler's own local R2 engine (what `wrangler r2 object put --local` runs): the only way in
// from outside the Worker that keeps an object's custom metadata, which wrangler's command drops.
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
// @ts-expect-error s3rver ships no types
import S3rver from "s3rver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SwitchboardClient } from "../../cli/client";
import { type DevWorker, eventually, getJson, setUpTeam, startDevWorker } from "./dev-worker";

// "The client signs a sentinel and writes it over S3; the sweep verifies that signature", end
// to end: the real client writes to a local S3 server (s3rver); the test reads back exactly
// what was stored (bytes and x-amz-meta-* headers) with the S3 API, puts it into the R2 of the
// real Worker under `wrangler dev` with the same metadata, and fires the Worker's cron.
//
// The mapping assumed (the sweep depends on it in production): R2's S3 API stores a PUT's
// `x-amz-meta-<name>` header as the object's custom metadata `<name>`, which the Workers
// binding reads as `customMetadata["<name>"]` (names in lower case: S3 metadata names are
// case-insensitive and come back lower-cased). Miniflare's own emulation of R2's S3 API does
// the same; the second test writes through it, with no copying by the test.

const BUCKET = "switchboard";
const R2_S3_KEYS = { accessKeyId: "local-r2-key", secretAccessKey: "local-r2-secret" };
let worker: DevWorker;
let s3: { run(): Promise<{ port: number }>; close(): Promise<void> };
let s3Url = "";
let dir = "";
let r2: Miniflare | undefined;

/** The part of an R2 bucket these tests use (Miniflare's Node-side types do not resolve it). */
interface Bucket {
  put(key: string, value: Uint8Array | string, options?: { customMetadata?: Record<string, string>; httpMetadata?: { contentType?: string } }): Promise<unknown>;
  head(key: string): Promise<{ customMetadata?: Record<string, string> } | null>;
  get(key: string): Promise<{ customMetadata?: Record<string, string>; text(): Promise<string> } | null>;
}

beforeAll(async () => {
  worker = await startDevWorker();
  dir = mkdtempSync(join(tmpdir(), "s3rver-"));
  s3 = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: dir, configureBuckets: [{ name: BUCKET }] });
  s3Url = `http://127.0.0.1:${(await s3.run()).port}`;
}, 120_000);
afterAll(async () => {
  await r2?.dispose();
  await s3?.close();
  await worker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * The dev Worker's R2 bucket, opened on its persisted state as `wrangler r2 object put --local
 * --persist-to` does, and served through Miniflare's emulation of R2's S3 API at
 * `<url>/cdn-cgi/local/r2/s3` (with these keys).
 */
async function workerR2(): Promise<{ bucket: Bucket; s3Endpoint: string }> {
  r2 ??= new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: "export default {}",
      resourcePersistencePath: join(worker.persist, "v3"),
      r2Buckets: { BUCKET: { id: BUCKET, s3Credentials: R2_S3_KEYS } },
    }),
  );
  const url = await r2.ready;
  return { bucket: (await r2.getR2Bucket("BUCKET")) as unknown as Bucket, s3Endpoint: `${url.origin}/cdn-cgi/local/r2/s3` };
}

/** What R2 would keep as custom metadata of an S3 object with these headers (see above). */
function customMetadataOf(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (name.toLowerCase().startsWith("x-amz-meta-")) out[name.toLowerCase().slice("x-amz-meta-".length)] = value;
  });
  return out;
}

/** An object as stored by the S3 server: its exact bytes, its content type and its metadata (the GET's, checked against a HEAD). */
async function readBack(key: string) {
  const reader = new AwsClient({ accessKeyId: "S3RVER", secretAccessKey: "S3RVER", service: "s3", region: "auto" });
  const url = `${s3Url}/${BUCKET}/${key.split("/").map(encodeURIComponent).join("/")}`;
  const got = await reader.fetch(url);
  expect(got.status).toBe(200);
  const bytes = new Uint8Array(await got.arrayBuffer());
  const head = await reader.fetch(url, { method: "HEAD" });
  expect(head.status).toBe(200);
  const meta = customMetadataOf(got.headers);
  expect(customMetadataOf(head.headers)).toEqual(meta);
  return { bytes, meta, contentType: got.headers.get("content-type") ?? undefined };
}

async function fireCron() {
  const fired = await fetch(`${worker.url}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*`);
  await fired.body?.cancel();
}

/** The ids of the topic's events, replayed from the start of its log until `until` appears. */
async function loggedIds(team: { api_key: string }, sid: string, tid: string, until: string): Promise<string[]> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 15_000);
  try {
    const res = await fetch(`${worker.url}/v1/sessions/${sid}/topics/${tid}/stream`, { headers: { Authorization: `Bearer ${team.api_key}`, "Last-Event-ID": "0" }, signal: abort.signal });
    expect(res.status).toBe(200);
    const ids: string[] = [];
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const data = buffer
          .slice(0, end)
          .split("\n")
          .filter((l) => l.startsWith("data: "))
          .map((l) => l.slice(6))
          .join("\n");
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\n\n");
        if (!data) continue;
        const event = JSON.parse(data) as { id?: string };
        if (event.id) ids.push(event.id);
        if (event.id === until) return ids;
      }
    }
    throw new Error(`the stream ended before ${until}`);
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

describe("sentinels over S3, signed by the client, verified by the sweep", () => {
  it("applies the client's signed sentinel once, with the signature from its metadata; refuses a tampered copy and one without the metadata", async () => {
    const sid = "s3sig";
    const tid = "t1";
    const team = await setUpTeam(worker, sid, tid);
    const secret = `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;
    await team.post("/v1/team", team.api_key, { signing_secret: secret }, "PATCH");

    // The real client, with no callback endpoint to reach, falls back to S3 sentinels.
    const sentinel = { endpoint: s3Url, bucket: BUCKET, accessKeyId: "S3RVER", secretAccessKey: "S3RVER", teamId: team.team_id };
    const offline = new SwitchboardClient({ baseUrl: "http://127.0.0.1:9", apiKey: team.api_key, signingSecret: secret, retries: 0, minDelayMs: 1, sentinel });
    const events = [
      { id: "s3-genuine", type: "step_started" as const, session_id: sid, topic_id: tid, data: { step: "design" } },
      { id: "s3-tampered", type: "step_started" as const, session_id: sid, topic_id: tid, data: { step: "explore" } },
      { id: "s3-unsigned", type: "step_started" as const, session_id: sid, topic_id: tid, data: { step: "prep" } },
    ];
    const result = await offline.send(events);
    const keyOf = (id: string) => `callback-sentinels/alpha/${team.team_id}/${sid}/${tid}/${id}.json`;
    expect(result).toMatchObject({ delivered: "sentinel", keys: events.map((e) => keyOf(e.id)) });

    // Exactly what the client stored, read back over the S3 API.
    const genuine = await readBack(keyOf("s3-genuine"));
    expect(JSON.parse(new TextDecoder().decode(genuine.bytes))).toMatchObject(events[0] as object);
    expect(Object.keys(genuine.meta).sort()).toEqual(["webhook-id", "webhook-signature", "webhook-timestamp"]);
    expect(genuine.meta["webhook-signature"]).toMatch(/^v1,/);
    const tampered = await readBack(keyOf("s3-tampered"));
    const unsigned = await readBack(keyOf("s3-unsigned"));

    // Into the Worker's R2 as R2's S3 API would have stored each: the same bytes and metadata;
    // one with a byte of its body changed after signing; one without its metadata (what
    // `wrangler r2 object put` makes of it).
    const { bucket } = await workerR2();
    await bucket.put(keyOf("s3-genuine"), genuine.bytes, { customMetadata: genuine.meta, httpMetadata: { contentType: genuine.contentType } });
    const changed = new TextDecoder().decode(tampered.bytes).replace('"explore"', '"evaluate"');
    expect(changed).not.toBe(new TextDecoder().decode(tampered.bytes));
    await bucket.put(keyOf("s3-tampered"), changed, { customMetadata: tampered.meta, httpMetadata: { contentType: tampered.contentType } });
    await bucket.put(keyOf("s3-unsigned"), unsigned.bytes, { httpMetadata: { contentType: unsigned.contentType } });
    expect((await bucket.head(keyOf("s3-genuine")))?.customMetadata).toEqual(genuine.meta);
    expect(await getJson(worker, "/v1/sentinels", team.api_key)).toMatchObject({ pending: 3, rejected: 0 });

    await fireCron();
    const topic = await eventually(() => getJson(worker, `/v1/sessions/${sid}/topics/${tid}`, team.api_key), (t) => t.steps?.design?.status === "running");
    for (const step of ["explore", "evaluate", "prep"]) expect(topic.steps[step]?.status, step).toBe("pending");
    expect(await getJson(worker, "/v1/sentinels", team.api_key)).toMatchObject({ pending: 0, rejected: 2 });
    // Rejected for their signatures, kept with the reason (the body as it was).
    for (const [id, body] of [
      ["s3-tampered", changed],
      ["s3-unsigned", new TextDecoder().decode(unsigned.bytes)],
    ] as const) {
      const rejected = await bucket.get(keyOf(id).replace("callback-sentinels/alpha/", "callback-sentinels/rejected/alpha/"));
      expect(rejected?.customMetadata?.reason, id).toMatch(/^signature: /);
      expect(await rejected?.text()).toBe(body);
    }

    // Applied once: the same sentinel swept again (as if written twice, or a sweep stopped
    // before its delete) changes nothing; the topic's log holds the event once.
    await bucket.put(keyOf("s3-genuine"), genuine.bytes, { customMetadata: genuine.meta, httpMetadata: { contentType: genuine.contentType } });
    await fireCron();
    await eventually(() => getJson(worker, "/v1/sentinels", team.api_key), (s) => s.pending === 0);
    expect(await getJson(worker, "/v1/sentinels", team.api_key)).toMatchObject({ pending: 0, rejected: 2 });
    const online = new SwitchboardClient({ baseUrl: worker.url, apiKey: team.api_key, signingSecret: secret, retries: 2, minDelayMs: 10 });
    await online.send({ id: "s3-marker", type: "step_completed", session_id: sid, topic_id: tid, data: { step: "design", turns: 1 } });
    const ids = await loggedIds(team, sid, tid, "s3-marker");
    expect(ids.filter((id) => id === "s3-genuine")).toHaveLength(1);
    expect(ids).not.toContain("s3-tampered");
    expect(ids).not.toContain("s3-unsigned");
  }, 90_000);

  it("through R2's S3 API itself (Miniflare's emulation): the client's sentinel lands with its signature as custom metadata and is applied", async () => {
    const sid = "s3direct";
    const tid = "t1";
    const team = await setUpTeam(worker, sid, tid);
    const secret = `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;
    await team.post("/v1/team", team.api_key, { signing_secret: secret }, "PATCH");
    const { bucket, s3Endpoint } = await workerR2();

    const sentinel = { endpoint: s3Endpoint, bucket: BUCKET, ...R2_S3_KEYS, teamId: team.team_id };
    const offline = new SwitchboardClient({ baseUrl: "http://127.0.0.1:9", apiKey: team.api_key, signingSecret: secret, retries: 0, minDelayMs: 1, sentinel });
    const event = { id: "direct-1", type: "step_started" as const, session_id: sid, topic_id: tid, data: { step: "design" } };
    const result = await offline.send(event);
    const key = `callback-sentinels/alpha/${team.team_id}/${sid}/${tid}/direct-1.json`;
    expect(result).toMatchObject({ delivered: "sentinel", keys: [key] });
    const stored = await bucket.head(key);
    expect(Object.keys(stored?.customMetadata ?? {}).sort()).toEqual(["webhook-id", "webhook-signature", "webhook-timestamp"]);

    await fireCron();
    await eventually(() => getJson(worker, `/v1/sessions/${sid}/topics/${tid}`, team.api_key), (t) => t.steps?.design?.status === "running");
    expect(await getJson(worker, "/v1/sentinels", team.api_key)).toMatchObject({ pending: 0, rejected: 0 });
  }, 60_000);
});
