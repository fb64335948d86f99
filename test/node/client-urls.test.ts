import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NetworkError, SwitchboardClient } from "../../cli/client";
import { runCli } from "./cli-process";
import { startLocalS3 } from "./local-s3";

// A SWITCHBOARD_URL that is not one is bad usage before anything is sent; a server that cannot
// be reached is said with its cause, and a hint naming the URL and where it came from.

let home = "";
/** Counts what reaches it; answers 202 as the callbacks endpoint does. */
let server: Server;
let port = 0;
let requests = 0;
/** A port nothing listens on (taken, then let go). */
let closedPort = 0;
let s3: Awaited<ReturnType<typeof startLocalS3>>;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "switchboard-urls-"));
  server = createServer((req, res) => {
    requests += 1;
    req.resume();
    res.writeHead(202, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ accepted: 1 }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
  const probe = createTcpServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  s3 = await startLocalS3();
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  await s3?.stop();
  rmSync(home, { recursive: true, force: true });
});

const sentinelEnv = () => ({
  SWITCHBOARD_TEAM_ID: "team_1",
  SWITCHBOARD_SENTINEL_ENDPOINT: s3.url,
  SWITCHBOARD_SENTINEL_BUCKET: "switchboard",
  SWITCHBOARD_SENTINEL_ACCESS_KEY_ID: "S3RVER",
  SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY: "S3RVER",
});
const sentinel = () => ({ endpoint: s3.url, bucket: "switchboard", accessKeyId: "S3RVER", secretAccessKey: "S3RVER", teamId: "team_1" });
/** The sentinels s3rver holds for a session (it keeps objects as files under its directory). */
const sentinelsOf = (session: string): string[] => {
  const found: string[] = [];
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (n === session) found.push(join(dir, n));
      walk(join(dir, n));
    }
  };
  walk(s3.dir);
  return found;
};
const emitArgs = (session: string) => ["emit", "--session", session, "--type", "update_status", "--data", '{"status":"running"}'];

describe("a SWITCHBOARD_URL without its scheme", () => {
  it("emit and run: bad usage (exit 2) naming SWITCHBOARD_URL, nothing sent, no sentinel, no agent started", async () => {
    requests = 0;
    const env = { SWITCHBOARD_URL: `127.0.0.1:${port}`, SWITCHBOARD_API_KEY: "k", SWITCHBOARD_RETRIES: "1", ...sentinelEnv() };
    const emit = await runCli(home, emitArgs("noscheme"), env);
    expect(emit.code).toBe(2);
    expect(emit.stderr).toBe(`error: SWITCHBOARD_URL is not a URL: 127.0.0.1:${port}\nhint: give the Worker's base URL with its scheme, e.g. http://127.0.0.1:${port}\n`);
    const marker = join(home, "agent-ran");
    const run = await runCli(home, ["run", "--session", "noscheme", "--topic", "t1", "design", "--", process.execPath, "-e", `require("fs").writeFileSync(${JSON.stringify(marker)}, "")`], env);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^error: SWITCHBOARD_URL is not a URL/);
    expect(readdirSync(home)).not.toContain("agent-ran");
    // `localhost:8792` parses, as a URL of the scheme `localhost:`: refused as well.
    const scheme = await runCli(home, emitArgs("noscheme"), { ...env, SWITCHBOARD_URL: `localhost:${port}` });
    expect(scheme.code).toBe(2);
    expect(scheme.stderr).toMatch(/^error: SWITCHBOARD_URL must be an http or https URL, not localhost:/);
    expect(requests).toBe(0);
    expect(sentinelsOf("noscheme")).toEqual([]);
  });

  it("the people's commands and login: bad usage naming where the URL came from", async () => {
    const xdg = join(home, "xdg-bad");
    const tasks = await runCli(home, ["tasks"], { XDG_CONFIG_HOME: xdg, SWITCHBOARD_URL: `127.0.0.1:${port}`, SWITCHBOARD_API_KEY: "k" });
    expect(tasks.code).toBe(2);
    expect(tasks.stderr).toMatch(/^error: SWITCHBOARD_URL is not a URL: 127\.0\.0\.1:\d+\n/);
    const login = await runCli(home, ["login", "--key", "k"], { XDG_CONFIG_HOME: xdg, SWITCHBOARD_URL: `127.0.0.1:${port}` });
    expect(login.code).toBe(2);
    expect(login.stderr).toMatch(/^error: SWITCHBOARD_URL is not a URL: /);
    const flag = await runCli(home, ["login", "--key", "k", "--url", `127.0.0.1:${port}`], { XDG_CONFIG_HOME: xdg });
    expect(flag.stderr).toMatch(/^error: --url is not a URL: /);
    // A stored URL written by hand: the file is named.
    mkdirSync(join(xdg, "switchboard"), { recursive: true });
    writeFileSync(join(xdg, "switchboard", "config.json"), JSON.stringify({ url: `127.0.0.1:${port}`, api_key: "k" }));
    const stored = await runCli(home, ["status"], { XDG_CONFIG_HOME: xdg });
    expect(stored.code).toBe(2);
    expect(stored.stderr).toContain(`error: the url in ${join(xdg, "switchboard", "config.json")} is not a URL`);
    expect(requests).toBe(0);
  });

  it("given to the client directly: the TypeError is final, tried once, never a sentinel", async () => {
    const lines: string[] = [];
    const client = new SwitchboardClient({ baseUrl: `127.0.0.1:${port}`, apiKey: "k", retries: 3, minDelayMs: 1, sentinel: sentinel(), log: (l) => void lines.push(l) });
    await expect(client.send({ id: "u1", type: "update_status", session_id: "direct", data: { status: "running" } })).rejects.toThrow(TypeError);
    expect(lines).toEqual([expect.stringMatching(/^callback attempt 1 failed: Invalid URL$/)]);
    expect(sentinelsOf("direct")).toEqual([]);
  });
});

describe("a server that cannot be reached", () => {
  it("is still an outage: retried, then a sentinel, its cause in the error", async () => {
    const lines: string[] = [];
    const client = new SwitchboardClient({ baseUrl: `http://127.0.0.1:${closedPort}`, apiKey: "k", retries: 2, minDelayMs: 1, sentinel: sentinel(), log: (l) => void lines.push(l) });
    const result = await client.send({ id: "r1", type: "update_status", session_id: "refused", data: { status: "running" } });
    expect(result).toMatchObject({ delivered: "sentinel", error: `could not reach http://127.0.0.1:${closedPort}: connect ECONNREFUSED 127.0.0.1:${closedPort}` });
    expect(lines.filter((l) => l.startsWith("callback attempt"))).toHaveLength(3);
    expect(sentinelsOf("refused")).toHaveLength(1);
    // Without a sentinel store, the error is a NetworkError carrying fetch's own.
    const bare = new SwitchboardClient({ baseUrl: `http://127.0.0.1:${closedPort}`, apiKey: "k", retries: 0 });
    const error = await bare.send({ id: "r2", type: "update_status", session_id: "refused", data: { status: "running" } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).cause).toBeInstanceOf(TypeError);
  });

  it("emit says why (refused, unknown host, TLS against plain http) and names the URL in a hint", async () => {
    const base = { SWITCHBOARD_API_KEY: "k", SWITCHBOARD_RETRIES: "0" };
    const refused = await runCli(home, emitArgs("s"), { ...base, SWITCHBOARD_URL: `http://127.0.0.1:${closedPort}` });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`error: could not reach http://127.0.0.1:${closedPort}: connect ECONNREFUSED 127.0.0.1:${closedPort}\n`);
    expect(refused.stderr).toContain(`hint: is the Worker running at SWITCHBOARD_URL (http://127.0.0.1:${closedPort})?`);
    expect(refused.stderr).not.toContain("fetch failed");
    const unknown = await runCli(home, emitArgs("s"), { ...base, SWITCHBOARD_URL: "http://no-such-host.invalid" });
    expect(unknown.stderr).toMatch(/error: could not reach http:\/\/no-such-host\.invalid: getaddrinfo (ENOTFOUND|EAI_AGAIN) no-such-host\.invalid\n/);
    const tls = await runCli(home, emitArgs("s"), { ...base, SWITCHBOARD_URL: `https://127.0.0.1:${port}` });
    expect(tls.stderr).toMatch(new RegExp(`error: could not reach https://127\\.0\\.0\\.1:${port}: ERR_SSL_\\w+: the TLS handshake failed \\(an https:// URL for a server that speaks plain http\\?\\)\\n`));
  });

  it("the people's commands name the URL and where it came from", async () => {
    const xdg = join(home, "xdg-down");
    const env = await runCli(home, ["tasks"], { XDG_CONFIG_HOME: xdg, SWITCHBOARD_URL: `http://127.0.0.1:${closedPort}`, SWITCHBOARD_API_KEY: "k" });
    expect(env.code).toBe(1);
    expect(env.stderr).toContain(`error: could not reach http://127.0.0.1:${closedPort}: connect ECONNREFUSED 127.0.0.1:${closedPort}\n`);
    expect(env.stderr).toContain(`The URL is SWITCHBOARD_URL (http://127.0.0.1:${closedPort})`);
    mkdirSync(join(xdg, "switchboard"), { recursive: true });
    writeFileSync(join(xdg, "switchboard", "config.json"), JSON.stringify({ url: `http://127.0.0.1:${closedPort}`, api_key: "k" }));
    const stored = await runCli(home, ["tasks"], { XDG_CONFIG_HOME: xdg });
    expect(stored.stderr).toContain(`The URL is the URL \`switchboard login\` stored in ${join(xdg, "switchboard", "config.json")} (http://127.0.0.1:${closedPort})`);
  });
});
