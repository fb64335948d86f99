#!/usr/bin/env node
// PR previews: `node scripts/preview.mjs up <pr>` makes pull request <pr>'s preview from
// wrangler.toml's [env.preview]: it creates the D1 databases, R2 buckets and queues
// [env.preview] names, each with `-pr-<pr>` after its name (if missing), writes
// wrangler.preview.jsonc (previewConfig: [env.preview] as wrangler resolves it for
// `--env preview`, flattened, with those names and the Worker `<[env.preview] name>-pr-<pr>`),
// applies D1 migrations with --remote and deploys it WITHOUT --env; `down <pr>` deletes the
// Worker and those resources, emptying the buckets first. Each pull request gets its own
// resources because a preview must never touch production's data (nor another preview's),
// and a queue has one consumer Worker, so two previews cannot share one. The config is
// written next to wrangler.toml because its paths (main, migrations_dir) are relative to it.
// `down` reads the names from the checked-out wrangler.toml: a resource renamed in
// [env.preview] while a pull request is open is left behind under its old name.
//
// Secrets: for each name in [env.preview]'s `secrets.required`, PREVIEW_<NAME> from the
// environment (PREVIEW_ADMIN_TOKEN, PREVIEW_SECRETS_KEY) is uploaded with the deploy itself
// (`--secrets-file`). wrangler 4.156 refuses to deploy a Worker that does not exist yet
// without its required secrets ("This Worker does not exist yet, so secrets cannot be set in
// advance"), and `wrangler secret put` before the first deploy would make a placeholder
// Worker; one deploy with the file works for the first deploy and every later one.
//
// `down` needs CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID (as CI has them) to empty the
// buckets through the API: wrangler 4.156 has no command that lists a bucket's objects, and
// R2 refuses to delete a bucket that is not empty. What fails is reported, and exits 1.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { previewConfig, previewConfigText, previewResources, readRawConfig } from "./preview-config.mjs";

const CONFIG = "wrangler.preview.jsonc";
/** What wrangler and the API say about something already gone: `down` is safe to run twice. */
const GONE = /not[ _]found|does not exist|doesn't exist|could ?n[o']t find|no such/i;

const [command, pr] = process.argv.slice(2);
if (!["up", "down"].includes(command) || !/^\d+$/.test(pr ?? "")) {
  console.error("usage: node scripts/preview.mjs up|down <pull request number>");
  process.exit(2);
}

let raw;
let names;
try {
  raw = readRawConfig("wrangler.toml");
  names = previewResources(previewConfig(raw, Number(pr)));
} catch (error) {
  fail(`wrangler.toml: ${error instanceof Error ? error.message : String(error)}`);
}

/**
 * Runs `npx wrangler …`; its output is shown as it comes, and kept to explain a failure.
 * CLOUDFLARE_ENV is not passed on: it would make wrangler pick an environment in the
 * generated config (which has none) and append its name to the Worker's.
 */
function wrangler(args, options = {}) {
  console.error(`$ wrangler ${args.join(" ")}`);
  const { CLOUDFLARE_ENV: _, ...env } = process.env;
  const r = spawnSync("npx", ["wrangler", ...args], { encoding: "utf8", env, input: options.input ?? "", maxBuffer: 64 * 1024 * 1024 });
  if (r.stderr) process.stderr.write(r.stderr);
  const output = `${r.stdout ?? ""}\n${r.stderr ?? ""}`.trim();
  if (r.error) return { ok: false, stdout: "", output: String(r.error) };
  if (!options.quiet && r.stdout) process.stderr.write(r.stdout);
  return { ok: r.status === 0, stdout: r.stdout ?? "", output };
}

function mustWrangler(args, what, options = {}) {
  const r = wrangler(args, options);
  if (!r.ok) fail(`${what} failed: ${lastLines(r.output)}`);
  return r.stdout;
}

function lastLines(text, n = 6) {
  return text.split("\n").filter((l) => l.trim()).slice(-n).join("\n  ");
}

function fail(message) {
  console.error(`preview ${command} ${pr}: ${message}`);
  process.exit(1);
}

if (command === "up") {
  // [env.preview]'s required secrets, each from PREVIEW_<NAME>.
  const secrets = (previewConfig(raw, Number(pr)).secrets?.required ?? []).map((name) => ({ name, from: `PREVIEW_${name}` }));
  const missing = secrets.filter((s) => !process.env[s.from]).map((s) => s.from);
  // Checked before anything is created: without them the deploy would be refused anyway.
  if (missing.length > 0) {
    console.error(`preview up ${pr}: set ${missing.join(" and ")} (the preview Worker's ${secrets.map((s) => s.name).join(" and ")})`);
    process.exit(2);
  }
  // Creating what exists already fails; that is fine (a later push to the pull request).
  const created = Object.fromEntries(names.databases.map((db) => [db, wrangler(["d1", "create", db])]));
  const databaseIds = {};
  if (names.databases.length > 0) {
    const list = JSON.parse(mustWrangler(["d1", "list", "--json"], "listing D1 databases", { quiet: true }) || "[]");
    for (const db of names.databases) {
      const found = list.find((d) => d.name === db);
      if (!found) fail(`D1 database ${db} was not created: ${lastLines(created[db].output)}`);
      databaseIds[db] = found.uuid;
    }
  }
  for (const bucket of names.buckets) wrangler(["r2", "bucket", "create", bucket]);
  for (const queue of names.queues) wrangler(["queues", "create", queue]);
  writeFileSync(CONFIG, previewConfigText(previewConfig(raw, Number(pr), databaseIds), pr));
  for (const db of names.databases) mustWrangler(["d1", "migrations", "apply", db, "--remote", "-c", CONFIG], `applying D1 migrations to ${db}`);
  // JSON (not dotenv, which would expand $VAR in a value), readable only by us, removed after
  // (before a failure is reported: process.exit skips `finally`).
  const dir = mkdtempSync(join(tmpdir(), "preview-secrets-"));
  const secretsFile = join(dir, "secrets.json");
  let deployed;
  try {
    const deploy = ["deploy", "-c", CONFIG];
    if (secrets.length > 0) {
      writeFileSync(secretsFile, JSON.stringify(Object.fromEntries(secrets.map((s) => [s.name, process.env[s.from]]))), { mode: 0o600 });
      chmodSync(secretsFile, 0o600);
      deploy.push("--secrets-file", secretsFile);
    }
    deployed = wrangler(deploy);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (!deployed.ok) fail(`deploying ${names.worker} failed: ${lastLines(deployed.output)}`);
} else {
  const failures = [];
  /** One removal: done, already gone, or a failure reported at the end. */
  const remove = (what, args) => {
    const r = wrangler(args, { input: "y\n" });
    if (r.ok) return true;
    if (GONE.test(r.output)) {
      console.error(`${what}: already gone`);
      return true;
    }
    failures.push(`${what}: ${lastLines(r.output)}`);
    return false;
  };
  remove(`Worker ${names.worker}`, ["delete", "--name", names.worker, "--force"]);
  for (const queue of names.queues) remove(`queue ${queue}`, ["queues", "delete", queue]);
  for (const bucket of names.buckets) {
    try {
      const removed = await emptyBucket(bucket);
      if (removed !== null) console.error(`R2 bucket ${bucket}: ${removed} object(s) deleted`);
      remove(`R2 bucket ${bucket}`, ["r2", "bucket", "delete", bucket]);
    } catch (error) {
      failures.push(`R2 bucket ${bucket}: could not be emptied, so it was not deleted: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  for (const db of names.databases) remove(`D1 database ${db}`, ["d1", "delete", db, "--skip-confirmation"]);
  if (failures.length > 0) {
    console.error(`preview down ${pr}: not everything was removed:\n- ${failures.join("\n- ")}`);
    process.exit(1);
  }
}

/**
 * Deletes every object in the bucket through the Cloudflare API (list every page, then delete
 * each, a few at a time); null when the bucket does not exist. CLOUDFLARE_API_BASE_URL is
 * honoured as wrangler honours it.
 */
async function emptyBucket(bucket) {
  const token = process.env.CLOUDFLARE_API_TOKEN;
  const account = process.env.CLOUDFLARE_ACCOUNT_ID;
  if (!token || !account) throw new Error("CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID are needed to list its objects");
  const base = (process.env.CLOUDFLARE_API_BASE_URL ?? "https://api.cloudflare.com/client/v4").replace(/\/$/, "");
  const objects = `${base}/accounts/${encodeURIComponent(account)}/r2/buckets/${encodeURIComponent(bucket)}/objects`;
  const api = async (url, init = {}) => {
    const res = await fetch(url, { ...init, headers: { Authorization: `Bearer ${token}`, ...init.headers } });
    const text = await res.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: reported with the status.
    }
    return { res, body, text };
  };
  const keys = [];
  let cursor = "";
  do {
    const { res, body, text } = await api(`${objects}?per_page=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (res.status === 404) return null;
    if (!res.ok || !body?.success) throw new Error(`listing objects: HTTP ${res.status} ${text.slice(0, 300)}`);
    keys.push(...(body.result ?? []).map((o) => o.key));
    const info = body.result_info ?? {};
    cursor = info.is_truncated === false ? "" : (info.cursor ?? "");
  } while (cursor);
  for (let i = 0; i < keys.length; i += 8) {
    await Promise.all(
      keys.slice(i, i + 8).map(async (key) => {
        const r = await api(`${objects}/${key.split("/").map(encodeURIComponent).join("/")}`, { method: "DELETE" });
        if (!r.res.ok && r.res.status !== 404) throw new Error(`deleting ${key}: HTTP ${r.res.status} ${r.text.slice(0, 300)}`);
      }),
    );
  }
  return keys.length;
}
