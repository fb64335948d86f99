import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalS3 } from "./local-s3";
import { nodeAgent, sleep, startCli } from "./runner-helpers";

// Ctrl-C while the client waits to retry: an API that answers every callback 503 with a long
// Retry-After. The first Ctrl-C stops the wait at once; the step's end gets one short try (then
// a sentinel, when a store is configured), the summary is printed, and the runner exits 130.

let server: Server;
let url = "";
/** The event types of the callbacks received, in order. */
let callbacks: string[] = [];
let s3: Awaited<ReturnType<typeof startLocalS3>>;
let dir = "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sb-retry-int-"));
  server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    if (req.method === "POST" && req.url === "/v1/callbacks") {
      callbacks.push(...[...body.matchAll(/"type":"([a-z_.]+)"/g)].map((m) => m[1] as string));
      res.writeHead(503, { "Content-Type": "application/problem+json", "Retry-After": "1000" });
      res.end(JSON.stringify({ title: "Service Unavailable", status: 503 }));
      return;
    }
    // The topic's budgets read: answered, so only the callbacks are down.
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ steps: {} }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  s3 = await startLocalS3();
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Waits until the server has seen `n` callbacks (no clock: the test's own timeout bounds it). */
async function callbacksSeen(n: number): Promise<void> {
  while (callbacks.length < n) await sleep(20);
}

async function interruptedRun(session: string, extraEnv: Record<string, string>) {
  callbacks = [];
  const marker = join(dir, `${session}-agent-ran`);
  const run = startCli(["run", "--session", session, "--topic", "t1", "design", "--", ...nodeAgent(`require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran")`)], {
    SWITCHBOARD_URL: url,
    SWITCHBOARD_API_KEY: "k",
    SWITCHBOARD_RETRIES: "2",
    ...extraEnv,
  });
  // The start's first try was answered 503: the client now waits the 30 s Retry-After allows.
  await callbacksSeen(1);
  run.child.kill("SIGINT");
  const exit = await run.exited;
  return { exit, agentRan: existsSync(marker) };
}

describe("switchboard run: Ctrl-C while the client waits to retry", () => {
  it("stops the wait at once, gives step_failed one try, prints the summary and exits 130", async () => {
    const { exit, agentRan } = await interruptedRun("retrying", {});
    expect(exit.code, exit.stderr).toBe(130);
    expect(agentRan).toBe(false);
    // The start's one try, never retried, and the end's one short try: nothing more.
    expect(callbacks).toEqual(["step_started", "step_failed"]);
    expect(exit.stdout).toMatch(/design\s.*interrupted/);
    expect(exit.stdout).toContain("could not report step_failed for design after the interrupt: Service Unavailable");
    expect(exit.stderr).not.toMatch(/^error:/m);
  }, 40_000);

  it("with a sentinel store, the end that could not be sent is written as a sentinel", async () => {
    const { exit } = await interruptedRun("retrying-sentinel", {
      SWITCHBOARD_TEAM_ID: "team_1",
      SWITCHBOARD_SENTINEL_ENDPOINT: s3.url,
      SWITCHBOARD_SENTINEL_BUCKET: "switchboard",
      SWITCHBOARD_SENTINEL_ACCESS_KEY_ID: "S3RVER",
      SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY: "S3RVER",
    });
    expect(exit.code, exit.stderr).toBe(130);
    expect(callbacks).toEqual(["step_started", "step_failed"]);
    expect(exit.stdout).toMatch(/design\s.*interrupted/);
    // s3rver keeps each object as files under its directory, named by the key.
    const keys = (readdirSync(join(s3.dir, "switchboard"), { recursive: true }) as string[]).filter((p) => p.includes("retrying-sentinel") && p.includes("-design-"));
    expect(new Set(keys.map((p) => /-design-([a-z_]+)\.json/.exec(p)?.[1]))).toEqual(new Set(["step_failed"]));
  }, 40_000);
});
