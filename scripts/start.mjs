#!/usr/bin/env node
// `npm start`: the whole control plane on this machine. Applies local D1 migrations, runs
// `wrangler dev` with state persisted under .wrangler/state, fires the cron every minute
// (wrangler dev does not), creates a `dev` team on first start and prints a key and URLs.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runtimeV8Flags } from "./runtime-flags.mjs";

const root = new URL("..", import.meta.url).pathname;
const port = Number(process.env.PORT ?? 8787);
const host = "127.0.0.1";
const base = `http://${host}:${port}`;
const persist = join(root, ".wrangler", "state");
mkdirSync(persist, { recursive: true });

// Local-only values. SECRETS_KEY encrypts team secrets at rest; it is generated once per
// checkout and kept beside the local data it protects (like .dev.vars), never committed.
const localFile = join(persist, "local.json");
const local = existsSync(localFile) ? JSON.parse(readFileSync(localFile, "utf8")) : {};
local.secrets_key ??= randomBytes(32).toString("base64");
writeFileSync(localFile, JSON.stringify(local, null, 2), { mode: 0o600 });
const adminToken = process.env.ADMIN_TOKEN ?? "dev-admin-token";
const wrangler = join(root, "node_modules", ".bin", "wrangler");

const migrate = spawnSync(wrangler, ["d1", "migrations", "apply", "switchboard", "--local", "--persist-to", persist], { cwd: root, stdio: "inherit", env: { ...process.env, CI: "1" } });
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

// Its own process group: wrangler leaves workerd and esbuild behind when only it is killed.
const dev = spawn(
  wrangler,
  ["dev", "--ip", host, "--port", String(port), "--persist-to", persist, "--test-scheduled", "--show-interactive-dev-session=false"],
  // The two secrets go in wrangler's environment, where it looks for required secrets: not
  // on its command line, which any local user can read with `ps`. (A .dev.vars file, when
  // there is one, is read instead of the environment and must then hold both.)
  { cwd: root, stdio: ["ignore", "inherit", "inherit"], detached: true, env: { ...process.env, WRANGLER_SEND_METRICS: "false", ADMIN_TOKEN: adminToken, SECRETS_KEY: local.secrets_key, MINIFLARE_WORKERD_V8_FLAGS: runtimeV8Flags() } },
);
let stopping = false;
const stop = (code = 0) => {
  if (stopping) return;
  stopping = true;
  try {
    process.kill(-dev.pid, "SIGTERM");
  } catch {}
  setTimeout(() => process.exit(code), 500);
};
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
dev.on("exit", (code) => {
  if (!stopping) {
    console.error(`wrangler dev exited (${code})`);
    process.exit(code ?? 1);
  }
});

async function waitHealthy() {
  for (let i = 0; i < 600; i++) {
    try {
      const res = await fetch(`${base}/healthz`);
      const body = await res.json().catch(() => null);
      if (res.ok) return;
      // Missing or short secrets do not heal by waiting: say so at once (the Worker fails closed).
      const secrets = body?.checks?.secrets;
      if (typeof secrets === "string" && secrets !== "ok") {
        console.error(`the Worker is misconfigured: ${secrets.replace(/^error: /, "")}. A .dev.vars file is read instead of the values npm start passes: it must hold ADMIN_TOKEN and a SECRETS_KEY of at least 32 bytes (e.g. openssl rand -base64 32), or be removed.`);
        stop(1);
        return new Promise(() => {}); // stop() exits; nothing after this may run
      }
    } catch {}
    await new Promise((r) => setTimeout(r, 250));
  }
  console.error("the Worker did not become healthy in 150 s");
  stop(1);
}

async function admin(path, body) {
  const res = await fetch(`${base}${path}`, { method: "POST", headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

await waitHealthy();
let key;
if (!local.dev_team_id) {
  const team = await admin("/v1/admin/teams", { name: "dev" });
  local.dev_team_id = team.team_id;
  writeFileSync(localFile, JSON.stringify(local, null, 2), { mode: 0o600 });
  key = team.api_key;
} else {
  // Keys are stored hashed, so the first one cannot be shown again: mint a fresh one.
  key = (await admin(`/v1/admin/teams/${local.dev_team_id}/keys`, { name: `npm start ${new Date().toISOString()}`, scopes: ["operator"] })).key;
}
console.log(`
Switchboard is running at ${base}
  dev team:      ${local.dev_team_id}
  operator key:  ${key}
  health:        ${base}/healthz
  OpenAPI:       ${base}/openapi.json
  try:           curl -H "Authorization: Bearer ${key}" ${base}/v1/sessions
`);

// The cron trigger, every minute, as Cloudflare would fire it.
setInterval(async () => {
  try {
    const res = await fetch(`${base}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent("* * * * *")}`);
    await res.body?.cancel();
  } catch {}
}, 60_000);
