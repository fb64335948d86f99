import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./cli-process";
import { startLocalS3 } from "./local-s3";

// With the API unreachable, what the sentinel store (a local S3 server) answers is reported as
// the store's, with hints about its settings, never read as the API's refusal.

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

const emit = (settings: Record<string, string>) =>
  runCli(dir, ["emit", "--session", "s1", "--type", "update_status", "--data", '{"status":"running"}'], {
    SWITCHBOARD_URL: "http://127.0.0.1:9", // nothing listens here
    SWITCHBOARD_API_KEY: "sk_unused",
    SWITCHBOARD_RETRIES: "0",
    SWITCHBOARD_TEAM_ID: "team_1",
    SWITCHBOARD_SENTINEL_ENDPOINT: s3Url,
    SWITCHBOARD_SENTINEL_BUCKET: "switchboard",
    SWITCHBOARD_SENTINEL_ACCESS_KEY_ID: "S3RVER",
    SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY: "S3RVER",
    ...settings,
  });

describe("sentinel store failures", () => {
  it("the right settings deliver the event as a sentinel", async () => {
    const run = await emit({});
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/"delivered":"sentinel"/);
  });

  it("refused keys (403 InvalidAccessKeyId) point at the sentinel keys, not the API key's scope", async () => {
    const run = await emit({ SWITCHBOARD_SENTINEL_ACCESS_KEY_ID: "WRONG" });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: callbacks unreachable \(.+\), and the sentinel store refused the event: HTTP 403 InvalidAccessKeyId: /);
    expect(run.stderr).toMatch(/hint: the sentinel store refused the credentials: check SWITCHBOARD_SENTINEL_ACCESS_KEY_ID and SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY/);
    expect(run.stderr).not.toMatch(/agent scope/);
  });

  it("a wrong secret (403 SignatureDoesNotMatch, as R2 answers it) points at the sentinel keys", async () => {
    // s3rver does not check a known key's signature: a stand-in answers as R2 does.
    const r2 = createServer((req, res) => {
      req.resume();
      res.writeHead(403, { "Content-Type": "application/xml" });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your secret access key and signing method.</Message></Error>');
    });
    await new Promise<void>((r) => r2.listen(0, "127.0.0.1", r));
    try {
      const run = await emit({ SWITCHBOARD_SENTINEL_ENDPOINT: `http://127.0.0.1:${(r2.address() as AddressInfo).port}`, SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY: "wrong" });
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/refused the event: HTTP 403 SignatureDoesNotMatch: The request signature we calculated/);
      expect(run.stderr).toMatch(/hint: the sentinel store refused the credentials: check SWITCHBOARD_SENTINEL_ACCESS_KEY_ID and SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY/);
      expect(run.stderr).not.toMatch(/agent scope/);
    } finally {
      r2.close();
    }
  });

  it("an unknown bucket (404 NoSuchBucket) points at the bucket setting, not a missing session", async () => {
    const run = await emit({ SWITCHBOARD_SENTINEL_BUCKET: "no-such-bucket" });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/refused the event: HTTP 404 NoSuchBucket/);
    expect(run.stderr).toMatch(/hint: no bucket no-such-bucket at SWITCHBOARD_SENTINEL_ENDPOINT \(http:\/\/127\.0\.0\.1:\d+\): check SWITCHBOARD_SENTINEL_BUCKET/);
    expect(run.stderr).not.toMatch(/session does not exist/);
  });

  it("an endpoint that does not answer says so", async () => {
    const run = await emit({ SWITCHBOARD_SENTINEL_ENDPOINT: "http://127.0.0.1:9" });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/hint: could not reach SWITCHBOARD_SENTINEL_ENDPOINT \(http:\/\/127\.0\.0\.1:9\)/);
  }, 30_000);
});
