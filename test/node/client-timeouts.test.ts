import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error s3rver ships no types
import S3rver from "s3rver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SwitchboardClient } from "../../cli/client";
import { runCli } from "./cli-process";

// The agent client against endpoints that hang or ask it to wait, on local servers.

const event = { id: "h1", type: "update_status" as const, session_id: "s", data: { status: "running" } };

/** Accepts every request and never answers it. */
let hung: Server;
let hungUrl = "";
const held: ServerResponse[] = [];
let hungRequests = 0;

/** Answers from a plan, then 202; notes when each request came. */
let planned: Server;
let plannedUrl = "";
let plan: Array<{ status: number; headers?: Record<string, string> }> = [];
let arrivals: number[] = [];

let s3: { run(): Promise<{ port: number }>; close(): Promise<void> };
let s3Url = "";
let s3Dir = "";
let home = "";

const listen = async (server: Server) => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};
const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

beforeAll(async () => {
  hung = createServer((req, res) => {
    hungRequests += 1;
    req.resume();
    held.push(res);
  });
  hungUrl = await listen(hung);
  planned = createServer((req, res) => {
    arrivals.push(Date.now());
    req.resume();
    const next = plan.shift() ?? { status: 202 };
    res.writeHead(next.status, { "Content-Type": "application/json", ...next.headers });
    res.end(JSON.stringify(next.status === 202 ? { accepted: 1, request_id: "r" } : { title: "busy" }));
  });
  plannedUrl = await listen(planned);
  s3Dir = mkdtempSync(join(tmpdir(), "s3rver-"));
  s3 = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: s3Dir, configureBuckets: [{ name: "switchboard" }] });
  s3Url = `http://127.0.0.1:${(await s3.run()).port}`;
  home = mkdtempSync(join(tmpdir(), "switchboard-home-"));
});
afterAll(async () => {
  await close(hung);
  await close(planned);
  await s3?.close();
  rmSync(s3Dir, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

describe("agent client timeouts", () => {
  it("gives up on an attempt that gets no answer, retries, and reports the timeout", async () => {
    hungRequests = 0;
    const client = new SwitchboardClient({ baseUrl: hungUrl, apiKey: "k", timeoutMs: 300, retries: 2, minDelayMs: 10, maxDelayMs: 20 });
    const started = Date.now();
    await expect(client.send(event)).rejects.toThrow(/no answer within 300 ms/);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(hungRequests).toBe(3);
  }, 15_000);

  it("falls back to a sentinel when every attempt timed out", async () => {
    const client = new SwitchboardClient({
      baseUrl: hungUrl,
      apiKey: "k",
      timeoutMs: 300,
      retries: 1,
      minDelayMs: 10,
      sentinel: { endpoint: s3Url, bucket: "switchboard", accessKeyId: "S3RVER", secretAccessKey: "S3RVER", teamId: "team_x" },
    });
    const result = await client.send({ ...event, id: "h2" });
    expect(result).toMatchObject({ delivered: "sentinel", keys: ["callback-sentinels/alpha/team_x/s/-/h2.json"], error: expect.stringMatching(/no answer within 300 ms/) });
  }, 15_000);

  it("bounds workspace uploads and topic reads too", async () => {
    const client = new SwitchboardClient({ baseUrl: hungUrl, apiKey: "k", timeoutMs: 300, retries: 0 });
    const started = Date.now();
    await expect(client.putWorkspaceFile("s", "t", "logs/design.log", "hello")).rejects.toThrow(/no answer within/);
    await expect(client.getTopic("s", "t")).rejects.toThrow(/no answer within 300 ms/);
    expect(Date.now() - started).toBeLessThan(3000);
  }, 15_000);

  it("SWITCHBOARD_TIMEOUT_MS sets it for the CLI", async () => {
    const started = Date.now();
    const run = await runCli(home, ["emit", "--session", "s", "--type", "update_status", "--data", '{"status":"running"}'], { SWITCHBOARD_URL: hungUrl, SWITCHBOARD_API_KEY: "k", SWITCHBOARD_TIMEOUT_MS: "300", SWITCHBOARD_RETRIES: "0" });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/no answer within 300 ms/);
    expect(Date.now() - started).toBeLessThan(5000);
  }, 15_000);
});

describe("agent client settings and delays", () => {
  it("a SWITCHBOARD_RETRIES or SWITCHBOARD_TIMEOUT_MS that is not a number is bad usage", async () => {
    const base = { SWITCHBOARD_URL: "http://127.0.0.1:9", SWITCHBOARD_API_KEY: "k" };
    const args = ["emit", "--session", "s", "--type", "update_status", "--data", '{"status":"running"}'];
    const retries = await runCli(home, args, { ...base, SWITCHBOARD_RETRIES: "lots" });
    expect(retries.code).toBe(2);
    expect(retries.stderr).toMatch(/SWITCHBOARD_RETRIES/);
    const timeout = await runCli(home, args, { ...base, SWITCHBOARD_TIMEOUT_MS: "10s" });
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toMatch(/SWITCHBOARD_TIMEOUT_MS/);
  });

  it("waits what Retry-After says instead of the backoff, not on top of it", async () => {
    arrivals = [];
    plan = [{ status: 429, headers: { "Retry-After": "1" } }];
    // A backoff of 400 ms and up, so that waiting both would show.
    const client = new SwitchboardClient({ baseUrl: plannedUrl, apiKey: "k", minDelayMs: 400, maxDelayMs: 5000 });
    expect(await client.send(event)).toEqual({ delivered: "callback", accepted: 1 });
    expect(arrivals).toHaveLength(2);
    const gap = (arrivals[1] as number) - (arrivals[0] as number);
    expect(gap).toBeGreaterThanOrEqual(1000);
    expect(gap).toBeLessThan(1350);
  });

  it("a Retry-After longer than maxDelayMs is cut to it", async () => {
    arrivals = [];
    plan = [{ status: 503, headers: { "Retry-After": "120" } }];
    const client = new SwitchboardClient({ baseUrl: plannedUrl, apiKey: "k", minDelayMs: 10, maxDelayMs: 300 });
    expect(await client.send(event)).toEqual({ delivered: "callback", accepted: 1 });
    expect((arrivals[1] as number) - (arrivals[0] as number)).toBeLessThan(1000);
  });
});
