#!/usr/bin/env node
// PR previews: `node scripts/preview.mjs up <pr>` creates the preview's own D1, R2 bucket and
// queues (if missing), writes wrangler.preview.toml from wrangler.toml's top-level Worker with
// those names (previewConfig drops the [env.*] sections, [env.preview] included), and deploys
// it as Worker `switchboard-pr-<pr>` with its secrets; `down <pr>` deletes the Worker and its
// resources, emptying the bucket first. Each pull request gets its own resources because a
// preview must never touch production's data, and a queue has one consumer Worker, so two
// previews cannot share one.
//
// Secrets: PREVIEW_ADMIN_TOKEN and PREVIEW_SECRETS_KEY from the environment become the
// Worker's ADMIN_TOKEN and SECRETS_KEY, uploaded with the deploy itself (`--secrets-file`).
// wrangler.toml's `[secrets] required` makes wrangler 4.156 refuse to deploy a Worker that
// does not exist yet without them ("This Worker does not exist yet, so secrets cannot be set
// in advance"), and `wrangler secret put` before the first deploy would make a placeholder
// Worker; one deploy with the file works for the first deploy and every later one.
//
// `down` needs CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID (as CI has them) to empty the
// bucket through the API: wrangler 4.156 has no command that lists a bucket's objects, and
// R2 refuses to delete a bucket that is not empty. What fails is reported, and exits 1.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { previewConfig, previewNames } from "./preview-config.mjs";

const SECRETS = { ADMIN_TOKEN: "PREVIEW_ADMIN_TOKEN", SECRETS_KEY: "PREVIEW_SECRETS_KEY" };
/** What wrangler and the API say about something already gone: `down` is safe to run twice. */
const GONE = /not[ _]found|does not exist|doesn't exist|could ?n[o']t find|no such/i;

const [command, pr] = process.argv.slice(2);
if (!["up", "down"].includes(command) || !/^\d+$/.test(pr ?? "")) {
  console.error("usage: node scripts/preview.mjs up|down <pull request number>");
  process.exit(2);
}
const names = previewNames(Number(pr));

/** Runs `npx wrangler …`; its output is shown as it comes, and kept to explain a failure. */
function wrangler(args, options = {}) {
  console.error(`$ wrangler ${args.join(" ")}`);
  const r = spawnSync("npx", ["wrangler", ...args], { encoding: "utf8", input: options.input ?? "", maxBuffer: 64 * 1024 * 1024 });
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
  const missing = Object.values(SECRETS).filter((v) => !process.env[v]);
  // Checked before anything is created: without them the deploy would be refused anyway.
  if (missing.length > 0) {
    console.error(`preview up ${pr}: set ${missing.join(" and ")} (the preview Worker's ${Object.keys(SECRETS).join(" and ")})`);
    process.exit(2);
  }
  // Creating what exists already fails; that is fine (a later push to the pull request).
  const created = wrangler(["d1", "create", names.database]);
  const list = JSON.parse(mustWrangler(["d1", "list", "--json"], "listing D1 databases", { quiet: true }) || "[]");
  const database = list.find((d) => d.name === names.database);
  if (!database) fail(`D1 database ${names.database} was not created: ${lastLines(created.output)}`);
  wrangler(["r2", "bucket", "create", names.bucket]);
  wrangler(["queues", "create", names.queue]);
  wrangler(["queues", "create", names.deadLetterQueue]);
  writeFileSync("wrangler.preview.toml", previewConfig(readFileSync("wrangler.toml", "utf8"), names, database.uuid));
  mustWrangler(["d1", "migrations", "apply", names.database, "--remote", "-c", "wrangler.preview.toml"], "applying D1 migrations");
  // JSON (not dotenv, which would expand $VAR in a value), readable only by us, removed after.
  const dir = mkdtempSync(join(tmpdir(), "preview-secrets-"));
  const secretsFile = join(dir, "secrets.json");
  try {
    writeFileSync(secretsFile, JSON.stringify(Object.fromEntries(Object.entries(SECRETS).map(([name, from]) => [name, process.env[from]]))), { mode: 0o600 });
    chmodSync(secretsFile, 0o600);
    mustWrangler(["deploy", "-c", "wrangler.preview.toml", "--secrets-file", secretsFile], `deploying ${names.worker}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
  remove(`queue ${names.queue}`, ["queues", "delete", names.queue]);
  remove(`queue ${names.deadLetterQueue}`, ["queues", "delete", names.deadLetterQueue]);
  try {
    const removed = await emptyBucket(names.bucket);
    if (removed !== null) console.error(`R2 bucket ${names.bucket}: ${removed} object(s) deleted`);
    remove(`R2 bucket ${names.bucket}`, ["r2", "bucket", "delete", names.bucket]);
  } catch (error) {
    failures.push(`R2 bucket ${names.bucket}: could not be emptied, so it was not deleted: ${error instanceof Error ? error.message : String(error)}`);
  }
  remove(`D1 database ${names.database}`, ["d1", "delete", names.database, "--skip-confirmation"]);
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
