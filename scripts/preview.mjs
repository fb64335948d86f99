#!/usr/bin/env node
// PR previews: `node scripts/preview.mjs up <pr>` creates the preview's own D1, R2 bucket and
// queues (if missing), writes wrangler.preview.toml from [env.preview] with those names, and
// deploys it as Worker `switchboard-pr-<pr>`; `down <pr>` deletes the Worker and its resources.
// Each pull request gets its own resources because a preview must never touch production's
// data, and a queue has one consumer Worker, so two previews cannot share one.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { previewConfig, previewNames } from "./preview-config.mjs";

const [command, pr] = process.argv.slice(2);
if (!["up", "down"].includes(command) || !/^\d+$/.test(pr ?? "")) {
  console.error("usage: node scripts/preview.mjs up|down <pull request number>");
  process.exit(2);
}
const names = previewNames(Number(pr));
const wrangler = (...args) => execFileSync("npx", ["wrangler", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
const tryWrangler = (...args) => {
  try {
    return wrangler(...args);
  } catch {
    return null;
  }
};

if (command === "up") {
  tryWrangler("d1", "create", names.database);
  const list = JSON.parse(wrangler("d1", "list", "--json"));
  const database = list.find((d) => d.name === names.database);
  if (!database) throw new Error(`D1 database ${names.database} was not created`);
  tryWrangler("r2", "bucket", "create", names.bucket);
  tryWrangler("queues", "create", names.queue);
  tryWrangler("queues", "create", names.deadLetterQueue);
  writeFileSync("wrangler.preview.toml", previewConfig(readFileSync("wrangler.toml", "utf8"), names, database.uuid));
  wrangler("d1", "migrations", "apply", names.database, "--remote", "-c", "wrangler.preview.toml");
  console.log(wrangler("deploy", "-c", "wrangler.preview.toml"));
} else {
  tryWrangler("delete", "--name", names.worker, "--force");
  tryWrangler("queues", "delete", names.queue);
  tryWrangler("queues", "delete", names.deadLetterQueue);
  tryWrangler("r2", "bucket", "delete", names.bucket);
  tryWrangler("d1", "delete", names.database, "--skip-confirmation");
}
