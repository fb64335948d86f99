import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

/**
 * scripts/preview.mjs against a fake `npx wrangler` first on PATH and a fake Cloudflare API
 * (the R2 object routes) on 127.0.0.1: the commands it runs, in order, and what the account
 * holds afterwards.
 */

const SCRIPT = resolve("scripts/preview.mjs");
const WRANGLER_TOML = resolve("wrangler.toml");

interface Account {
  calls: { argv: string[]; cloudflareEnv?: string; secrets?: Record<string, string>; secretsFile?: string; secretsFileMode?: number }[];
  d1: Record<string, string>;
  buckets: Record<string, Record<string, string>>;
  queues: string[];
  workers: Record<string, { placeholder: boolean; secrets: Record<string, string> }>;
  /** `wrangler a b c` → an error that call fails with, once. */
  failNext?: Record<string, string>;
}

/**
 * The fake wrangler, written out as a script. It behaves as wrangler 4.156 does where the
 * preview depends on it (node_modules/wrangler/wrangler-dist/cli.js): `deploy` of a Worker that
 * does not exist yet is refused when a `[secrets] required` secret is not in --secrets-file
 * (addRequiredSecretsInheritBindings); `secret put` on a missing Worker first makes a
 * placeholder Worker (createDraftWorker); R2 refuses to delete a bucket that is not empty.
 */
function fakeWrangler(fs: typeof import("node:fs")) {
  const statePath = process.env.FAKE_CF_STATE as string;
  const state = JSON.parse(fs.readFileSync(statePath, "utf8"));
  const args = process.argv.slice(2);
  const argv = args.slice(1);
  const call: Record<string, unknown> = { argv, cloudflareEnv: process.env.CLOUDFLARE_ENV };
  state.calls.push(call);
  const save = () => fs.writeFileSync(statePath, JSON.stringify(state, null, 2));
  const done = (stdout: string) => {
    save();
    process.stdout.write(`${stdout}\n`);
    process.exit(0);
  };
  const fail = (message: string) => {
    save();
    process.stderr.write(`X [ERROR] ${message}\n`);
    process.exit(1);
  };
  if (args[0] !== "wrangler") fail(`npx ${args[0]}: only wrangler is faked`);
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  // The generated config is JSONC: // comment lines, then JSON.
  const config = () => JSON.parse(fs.readFileSync(flag("-c") as string, "utf8").replace(/^\s*\/\/.*$/gm, ""));
  const workerName = () => config().name as string;
  const requiredSecrets = () => (config().secrets?.required ?? []) as string[];
  if (argv[0] === "deploy") call.secretsFile = flag("--secrets-file");
  const injected = state.failNext?.[argv.slice(0, 3).join(" ")];
  if (injected) {
    delete state.failNext[argv.slice(0, 3).join(" ")];
    fail(injected);
  }
  const [a, b, c] = argv as [string, string, string];
  const name3 = argv[3] as string;
  if (a === "d1" && b === "create") {
    if (state.d1[c]) fail("A database with that name already exists [code: 7502]");
    state.d1[c] = `uuid-${c}`;
    done(`Created ${c}`);
  } else if (a === "d1" && b === "list") {
    done(JSON.stringify(Object.entries(state.d1).map(([name, uuid]) => ({ name, uuid }))));
  } else if (a === "d1" && b === "migrations" && c === "apply") {
    if (!state.d1[name3]) fail(`Couldn't find DB with name '${name3}'`);
    done("Migrations applied");
  } else if (a === "d1" && b === "delete") {
    if (!state.d1[c]) fail(`Couldn't find DB with name '${c}'`);
    delete state.d1[c];
    done(`Deleted '${c}' successfully.`);
  } else if (a === "r2" && b === "bucket" && c === "create") {
    if (state.buckets[name3]) fail("The bucket you tried to create already exists, and you own it. [code: 10004]");
    state.buckets[name3] = {};
    done(`Created bucket '${name3}'`);
  } else if (a === "r2" && b === "bucket" && c === "delete") {
    if (!state.buckets[name3]) fail("The specified bucket does not exist. [code: 10006]");
    if (Object.keys(state.buckets[name3]).length > 0) fail("The bucket you tried to delete is not empty. [code: 10008]");
    delete state.buckets[name3];
    done(`Deleted bucket ${name3}.`);
  } else if (a === "queues" && b === "create") {
    if (state.queues.includes(c)) fail("A queue with this name already exists [code: 11009]");
    state.queues.push(c);
    done(`Created queue ${c}.`);
  } else if (a === "queues" && b === "delete") {
    if (!state.queues.includes(c)) fail(`Queue "${c}" does not exist.`);
    state.queues = state.queues.filter((q: string) => q !== c);
    done(`Deleted queue ${c}.`);
  } else if (a === "secret" && b === "put") {
    const name = flag("--name") ?? workerName();
    state.workers[name] ??= { placeholder: true, secrets: {} };
    state.workers[name].secrets[c] = fs.readFileSync(0, "utf8").trim();
    done(`Success! Uploaded secret ${c}`);
  } else if (a === "deploy") {
    const name = workerName();
    const file = flag("--secrets-file");
    const fromFile: Record<string, string> = file ? JSON.parse(fs.readFileSync(file, "utf8")) : {};
    call.secretsFile = file;
    call.secretsFileMode = file ? fs.statSync(file).mode & 0o777 : undefined;
    call.secrets = fromFile;
    const worker = state.workers[name];
    const inherited = requiredSecrets().filter((s) => !(s in fromFile));
    if (inherited.length > 0 && !worker) {
      fail(`The following required secrets have not been set: ${inherited.join(", ")}\nThis Worker does not exist yet, so secrets cannot be set in advance with \`wrangler secret put\`.`);
    }
    const unset = inherited.filter((s) => !(s in (worker?.secrets ?? {})));
    if (unset.length > 0) fail(`The following required secrets have not been set: ${unset.join(", ")}`);
    state.workers[name] = { placeholder: false, secrets: { ...(worker?.secrets ?? {}), ...fromFile } };
    done(`Deployed ${name}\n  https://${name}.example.workers.dev`);
  } else if (a === "delete") {
    const name = flag("--name") as string;
    if (!state.workers[name]) fail("This Worker does not exist on your account. [code: 10007]");
    delete state.workers[name];
    done(`Successfully deleted ${name}`);
  } else {
    fail(`unexpected: wrangler ${argv.join(" ")}`);
  }
}

let dir: string;
let statePath: string;
let binDir: string;
let api: Server;
let apiUrl: string;
const apiRequests: string[] = [];

const read = (): Account => JSON.parse(readFileSync(statePath, "utf8"));
const write = (account: Account) => writeFileSync(statePath, JSON.stringify(account));
const commands = (account: Account) => account.calls.map((c) => c.argv.slice(0, c.argv[0] === "deploy" || c.argv[0] === "delete" ? 1 : c.argv[0] === "r2" ? 3 : 2).join(" "));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "preview-test-"));
  binDir = join(dir, "bin");
  const { mkdirSync, chmodSync } = await import("node:fs");
  mkdirSync(binDir);
  writeFileSync(join(binDir, "fake-wrangler.mjs"), `import * as fs from "node:fs";\n(${fakeWrangler.toString()})(fs);\n`);
  writeFileSync(join(binDir, "npx"), `#!/bin/sh\nexec "${process.execPath}" "${join(binDir, "fake-wrangler.mjs")}" "$@"\n`);
  chmodSync(join(binDir, "npx"), 0o755);
  statePath = join(dir, "account.json");
  // The R2 object routes of the Cloudflare API, over the fake account's buckets: pages of 2.
  api = createServer((req, res) => {
    const url = new URL(req.url as string, "http://x");
    apiRequests.push(`${req.method} ${url.pathname}${url.search}`);
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== "Bearer test-token") return reply(403, { success: false, errors: [{ code: 10000, message: "Authentication error" }] });
    const m = url.pathname.match(/^\/client\/v4\/accounts\/acc-1\/r2\/buckets\/([^/]+)\/objects(?:\/(.+))?$/);
    if (!m) return reply(404, { success: false, errors: [{ code: 7003, message: "No route" }] });
    const account = read();
    const bucket = account.buckets[decodeURIComponent(m[1] as string)];
    if (!bucket) return reply(404, { success: false, errors: [{ code: 10006, message: "The specified bucket does not exist." }] });
    if (req.method === "GET" && !m[2]) {
      const keys = Object.keys(bucket).sort();
      const from = Number(url.searchParams.get("cursor") ?? 0);
      const page = keys.slice(from, from + 2);
      const more = from + 2 < keys.length;
      return reply(200, { success: true, errors: [], result: page.map((key) => ({ key, size: 1 })), result_info: { cursor: more ? String(from + 2) : "", is_truncated: more, per_page: 2 } });
    }
    if (req.method === "DELETE" && m[2]) {
      const key = (m[2] as string).split("/").map(decodeURIComponent).join("/");
      delete bucket[key];
      write(account);
      return reply(200, { success: true, errors: [], result: { key } });
    }
    reply(405, { success: false, errors: [] });
  });
  await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
  apiUrl = `http://127.0.0.1:${(api.address() as { port: number }).port}/client/v4`;
});

afterAll(async () => {
  await new Promise((r) => api.close(r));
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  write({ calls: [], d1: {}, buckets: {}, queues: [], workers: {} });
  apiRequests.length = 0;
  copyFileSync(WRANGLER_TOML, join(dir, "wrangler.toml"));
  rmSync(join(dir, "wrangler.preview.jsonc"), { force: true });
});

function preview(command: string, pr: string, env: Record<string, string | undefined> = {}) {
  const base: Record<string, string | undefined> = {
    ...process.env,
    PATH: `${binDir}:${process.env.PATH}`,
    FAKE_CF_STATE: statePath,
    PREVIEW_ADMIN_TOKEN: "admin-token-value",
    PREVIEW_SECRETS_KEY: "secrets-key-value",
    CLOUDFLARE_API_TOKEN: "test-token",
    CLOUDFLARE_ACCOUNT_ID: "acc-1",
    CLOUDFLARE_API_BASE_URL: apiUrl,
    ...env,
  };
  for (const k of Object.keys(base)) if (base[k] === undefined) delete base[k];
  return new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    execFile(process.execPath, [SCRIPT, command, pr], { cwd: dir, env: base as NodeJS.ProcessEnv }, (error, stdout, stderr) => {
      done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The config `up` wrote, as wrangler reads it. */
const written = () => JSON.parse(readFileSync(join(dir, "wrangler.preview.jsonc"), "utf8").replace(/^\s*\/\/.*$/gm, ""));

/** Replaces `from` (or every `from`) in the copied wrangler.toml's [env.preview] part or its top level. */
function editToml(where: "top" | "env.preview", from: string, to: string, all = false) {
  const path = join(dir, "wrangler.toml");
  const toml = readFileSync(path, "utf8");
  const at = toml.indexOf("[env.preview]");
  const [top, env] = [toml.slice(0, at), toml.slice(at)];
  const part = where === "top" ? top : env;
  expect(part).toContain(from);
  const edit = (text: string) => (all ? text.replaceAll(from, to) : text.replace(from, to));
  writeFileSync(path, where === "top" ? edit(top) + env : top + edit(env));
}

describe("scripts/preview.mjs up", () => {
  it("deploys [env.preview] as the pull request's own Worker, with its secrets in the deploy itself, after its own resources and migrations", async () => {
    const r = await preview("up", "7");
    expect(r.code, r.stderr).toBe(0);
    const account = read();
    expect(commands(account)).toEqual(["d1 create", "d1 list", "r2 bucket create", "queues create", "queues create", "queues create", "queues create", "d1 migrations", "deploy"]);
    expect(account.calls.find((c) => c.argv[1] === "migrations")!.argv).toEqual(["d1", "migrations", "apply", "switchboard-preview-pr-7", "--remote", "-c", "wrangler.preview.jsonc"]);
    const deploy = account.calls.at(-1)!;
    // The generated config is the resolved environment: deployed without --env.
    expect(deploy.argv.slice(0, 3)).toEqual(["deploy", "-c", "wrangler.preview.jsonc"]);
    expect(deploy.argv).not.toContain("--env");
    expect(deploy.secrets).toEqual({ ADMIN_TOKEN: "admin-token-value", SECRETS_KEY: "secrets-key-value" });
    expect(deploy.secretsFileMode).toBe(0o600);
    // The secrets file does not outlive the deploy, and no placeholder Worker was made.
    expect(existsSync(deploy.secretsFile!)).toBe(false);
    expect(account.workers).toEqual({ "switchboard-preview-pr-7": { placeholder: false, secrets: { ADMIN_TOKEN: "admin-token-value", SECRETS_KEY: "secrets-key-value" } } });
    expect(account.d1).toEqual({ "switchboard-preview-pr-7": "uuid-switchboard-preview-pr-7" });
    expect(Object.keys(account.buckets)).toEqual(["switchboard-preview-pr-7"]);
    expect(account.queues).toEqual(["switchboard-preview-callbacks-pr-7", "switchboard-preview-notifications-pr-7", "switchboard-preview-callbacks-dlq-pr-7", "switchboard-preview-notifications-dlq-pr-7"]);
    const config = written();
    expect(config.name).toBe("switchboard-preview-pr-7");
    expect(config.d1_databases[0].database_id).toBe("uuid-switchboard-preview-pr-7");
    expect(config).not.toHaveProperty("env");
    expect(r.stdout + r.stderr).not.toContain("admin-token-value");
  });

  it("takes [env.preview]'s vars and required secrets, not the top level's", async () => {
    editToml("env.preview", 'LOG_LEVEL = "info"', 'LOG_LEVEL = "debug"');
    editToml("env.preview", 'required = ["ADMIN_TOKEN", "SECRETS_KEY"]', 'required = ["ADMIN_TOKEN", "SECRETS_KEY", "EXTRA_KEY"]');
    editToml("top", 'HEARTBEAT_MS = "15000"', 'HEARTBEAT_MS = "1"');
    editToml("top", 'required = ["ADMIN_TOKEN", "SECRETS_KEY"]', 'required = ["ADMIN_TOKEN", "SECRETS_KEY", "PRODUCTION_ONLY"]');
    const refused = await preview("up", "7");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("set PREVIEW_EXTRA_KEY");
    expect(read().calls).toEqual([]);
    const r = await preview("up", "7", { PREVIEW_EXTRA_KEY: "extra-value" });
    expect(r.code, r.stderr).toBe(0);
    expect(read().calls.at(-1)!.secrets).toEqual({ ADMIN_TOKEN: "admin-token-value", SECRETS_KEY: "secrets-key-value", EXTRA_KEY: "extra-value" });
    expect(written().vars).toMatchObject({ LOG_LEVEL: "debug", HEARTBEAT_MS: "15000" });
    expect(written().secrets).toEqual({ required: ["ADMIN_TOKEN", "SECRETS_KEY", "EXTRA_KEY"] });
  });

  it("renames what [env.preview] names: a renamed queue there is the preview's queue", async () => {
    editToml("env.preview", "switchboard-preview-callbacks", "switchboard-preview-jobs", true);
    const r = await preview("up", "7");
    expect(r.code, r.stderr).toBe(0);
    expect(read().queues).toEqual(["switchboard-preview-jobs-pr-7", "switchboard-preview-notifications-pr-7", "switchboard-preview-jobs-dlq-pr-7", "switchboard-preview-notifications-dlq-pr-7"]);
  });

  it("never hands wrangler CLOUDFLARE_ENV, which would rename the Worker", async () => {
    const r = await preview("up", "7", { CLOUDFLARE_ENV: "preview" });
    expect(r.code, r.stderr).toBe(0);
    expect(read().calls.map((c) => c.cloudflareEnv)).toEqual(read().calls.map(() => undefined));
  });

  it("deploys again on a later push, the resources already there", async () => {
    expect((await preview("up", "7")).code).toBe(0);
    const again = await preview("up", "7");
    expect(again.code, again.stderr).toBe(0);
    expect(read().workers["switchboard-preview-pr-7"]?.placeholder).toBe(false);
    expect(again.stderr).toContain("already exists");
  });

  it("refuses to start without the preview's secrets, before creating anything", async () => {
    const r = await preview("up", "7", { PREVIEW_SECRETS_KEY: undefined });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("PREVIEW_SECRETS_KEY");
    expect(read().calls).toEqual([]);
  });

  it("refuses an [env.preview] every preview would share something of, before creating anything", async () => {
    editToml("env.preview", "[env.preview.secrets]", '[[env.preview.kv_namespaces]]\nbinding = "KV"\nid = "kv-preview"\n\n[env.preview.secrets]');
    const r = await preview("up", "7");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("[env.preview] has kv_namespaces");
    expect(read().calls).toEqual([]);
  });

  it("fails, saying why, when the deploy fails, and removes the secrets file all the same", async () => {
    const account = read();
    account.failNext = { "deploy -c wrangler.preview.jsonc": "Authentication error [code: 10000]" };
    write(account);
    const r = await preview("up", "7");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("deploying switchboard-preview-pr-7 failed");
    expect(r.stderr).toContain("Authentication error");
    const file = read().calls.at(-1)!.secretsFile;
    expect(file).toMatch(/secrets\.json$/);
    expect(existsSync(file!)).toBe(false);
  });
});

describe("scripts/preview.mjs down", () => {
  it("empties the bucket through the API, then deletes the Worker, queues, bucket and database", async () => {
    expect((await preview("up", "9")).code).toBe(0);
    const account = read();
    account.buckets["switchboard-preview-pr-9"] = { "a.json": "1", "logs/team/w1/b.jsonl": "2", "topics/x y/c.txt": "3", "d": "4", "e": "5" };
    account.calls = [];
    write(account);
    const r = await preview("down", "9");
    expect(r.code, r.stderr).toBe(0);
    const after = read();
    expect(after).toMatchObject({ d1: {}, buckets: {}, queues: [], workers: {} });
    expect(commands(after)).toEqual(["delete", "queues delete", "queues delete", "queues delete", "queues delete", "r2 bucket delete", "d1 delete"]);
    // Listed page by page (the fake pages by 2), then each object deleted.
    expect(apiRequests.filter((q) => q.startsWith("GET"))).toHaveLength(3);
    expect(apiRequests.filter((q) => q.startsWith("DELETE"))).toHaveLength(5);
    expect(r.stderr).toContain("5 object(s) deleted");
  });

  it("removes one pull request's preview and leaves another's alone", async () => {
    expect((await preview("up", "4")).code).toBe(0);
    expect((await preview("up", "42")).code).toBe(0);
    const r = await preview("down", "4");
    expect(r.code, r.stderr).toBe(0);
    const after = read();
    expect(Object.keys(after.workers)).toEqual(["switchboard-preview-pr-42"]);
    expect(Object.keys(after.d1)).toEqual(["switchboard-preview-pr-42"]);
    expect(Object.keys(after.buckets)).toEqual(["switchboard-preview-pr-42"]);
    expect(after.queues).toEqual(["switchboard-preview-callbacks-pr-42", "switchboard-preview-notifications-pr-42", "switchboard-preview-callbacks-dlq-pr-42", "switchboard-preview-notifications-dlq-pr-42"]);
  });

  it("is safe to run again: what is already gone is not a failure", async () => {
    const r = await preview("down", "9");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("already gone");
  });

  it("exits 1 naming what it could not remove, after removing the rest", async () => {
    expect((await preview("up", "11")).code).toBe(0);
    const account = read();
    account.failNext = { "r2 bucket delete": "A request to the Cloudflare API failed: Internal error [code: 10001]" };
    write(account);
    const r = await preview("down", "11");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("R2 bucket switchboard-preview-pr-11");
    expect(r.stderr).toContain("Internal error");
    expect(read()).toMatchObject({ d1: {}, queues: [], workers: {} });
    expect(Object.keys(read().buckets)).toEqual(["switchboard-preview-pr-11"]);
  });

  it("does not delete a bucket it could not empty, and says so", async () => {
    expect((await preview("up", "12")).code).toBe(0);
    const account = read();
    account.buckets["switchboard-preview-pr-12"] = { "a.json": "1" };
    write(account);
    const r = await preview("down", "12", { CLOUDFLARE_API_TOKEN: "wrong-token" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/R2 bucket switchboard-preview-pr-12: could not be emptied.*HTTP 403/);
    expect(read().buckets["switchboard-preview-pr-12"]).toEqual({ "a.json": "1" });
  });
});

describe("the preview workflow", () => {
  it("hands the preview's secrets to the script, and puts none after the deploy", () => {
    const workflow = readFileSync(resolve(".github/workflows/preview.yml"), "utf8");
    expect(workflow).not.toMatch(/secret put/);
    // Forks get no secrets: neither job runs for them (it would fail red, not skip).
    expect(workflow.match(/if: github\.event\.action [!=]= 'closed' && github\.event\.pull_request\.head\.repo\.full_name == github\.repository/g)).toHaveLength(2);
    const up = workflow.slice(workflow.indexOf("node scripts/preview.mjs up"));
    expect(up).toMatch(/^\s+env:\n\s+PREVIEW_ADMIN_TOKEN: \$\{\{ secrets\.PREVIEW_ADMIN_TOKEN \}\}\n\s+PREVIEW_SECRETS_KEY: \$\{\{ secrets\.PREVIEW_SECRETS_KEY \}\}/m);
    // CLOUDFLARE_* reach `down` too (it empties the bucket through the API).
    expect(workflow).toMatch(/^env:\n\s+CLOUDFLARE_API_TOKEN: .*\n\s+CLOUDFLARE_ACCOUNT_ID: /m);
  });
});
