// A pull request's preview config, made from wrangler.toml's [env.preview] (scripts/preview.mjs;
// tested in test/node/preview-config.test.ts).
//
// What it is: [env.preview] resolved the way wrangler 4.156 resolves an environment for
// `wrangler deploy --env preview` (normalizeAndValidateEnvironment and normalizeAndValidateConfig
// in node_modules/wrangler/wrangler-dist/cli.js), written out as a flat config with no [env.*]
// sections, and then made the pull request's own: the Worker and every D1 database, R2 bucket
// and queue get `-pr-<N>` after the name [env.preview] gives them. It is deployed WITHOUT
// --env (and without CLOUDFLARE_ENV), so `wrangler deploy -c wrangler.preview.jsonc` deploys
// what `wrangler deploy --env preview` would, except for:
// - the names: Worker `switchboard-preview-pr-<N>`, D1 `switchboard-preview-pr-<N>`, queues
//   `switchboard-preview-callbacks-pr-<N>` …, and the D1 database_id of the PR's own database;
// - no routes (inherited or [env.preview]'s): two previews cannot share one, and inherited
//   ones are production's; a preview is served on workers.dev (workers_dev = true);
// - no `cf:service`/`cf:environment` tags (wrangler adds them only with --env), so the
//   previews are not grouped under the switchboard Worker in the dashboard.
// Nothing is taken from the top level that wrangler would not take for [env.preview] (no vars,
// no bindings, no secrets list), so production's resources never appear in it.
import { createRequire } from "node:module";

export const PREVIEW_ENV = "preview";

/** Fields an environment takes from the top level when it does not set them (wrangler 4.156). */
export const INHERITABLE = [
  "account_id", "compatibility_date", "compatibility_flags", "jsx_factory", "jsx_fragment", "tsconfig", "rules",
  "name", "main", "find_additional_modules", "preserve_file_names", "base_dir", "route", "routes", "triggers",
  "assets", "limits", "placement", "build", "workers_dev", "preview_urls", "migrations", "exports", "logfwdr",
  "no_bundle", "minify", "keep_names", "first_party_worker", "logpush", "upload_source_maps", "observability",
  "access", "cache", "compliance_region", "python_modules", "previews",
];

/** Fields an environment has only if it sets them itself: vars, secrets, define, every binding. */
export const NOT_INHERITABLE = [
  "vars", "secrets", "define", "durable_objects", "workflows", "kv_namespaces", "cloudchamber", "containers",
  "send_email", "queues", "connect", "r2_buckets", "d1_databases", "vectorize", "ai_search_namespaces", "ai_search",
  "agent_memory", "hyperdrive", "services", "analytics_engine_datasets", "dispatch_namespaces", "mtls_certificates",
  "tail_consumers", "streaming_tail_consumers", "unsafe", "browser", "analytics", "ai", "images", "stream", "media",
  "pipelines", "k2", "secrets_store_secrets", "artifacts", "unsafe_hello_world", "flagship", "worker_loaders",
  "ratelimits", "vpc_services", "vpc_networks", "version_metadata",
];

/** Fields read from the top level whatever the environment (an environment cannot set them). */
export const TOP_LEVEL_ONLY = [
  "$schema", "pages_build_output_dir", "send_metrics", "dependencies_instrumentation", "keep_vars", "addresses",
  "dev", "site", "alias", "wasm_modules", "text_blobs", "data_blobs",
];

/** Non-inherited fields of [env.preview] each pull request gets its own copy of (renamed). */
const PER_PULL_REQUEST = ["d1_databases", "r2_buckets", "queues"];
/** Non-inherited fields that hold no data two previews could share, taken as they are. */
const AS_IS = [
  "vars", "secrets", "define", "durable_objects", "ai", "browser", "images", "media", "stream", "version_metadata",
  "services", "tail_consumers", "streaming_tail_consumers", "send_email", "worker_loaders",
];

/** wrangler.toml (or any wrangler config) as written, parsed by wrangler's own reader. */
export function readRawConfig(path) {
  const require = createRequire(import.meta.url);
  return require("wrangler").experimental_readRawConfig({ config: path }).rawConfig;
}

/**
 * The environment `envName` of a raw config as `wrangler deploy --env <envName>` sees it, as
 * a raw config without environments: inherited fields from the environment or else the top
 * level (the name defaults to `<top-level name>-<envName>`), the others from the environment
 * only, and the top-level-only ones from the top level. A field wrangler 4.156 does not know
 * is an error here (wrangler would warn and ignore it), so that a new kind of binding cannot
 * slip into or out of a preview unnoticed.
 */
export function resolveEnvironment(raw, envName) {
  const env = raw.env?.[envName];
  if (env === undefined) throw new Error(`wrangler.toml has no [env.${envName}]`);
  const known = new Set([...INHERITABLE, ...NOT_INHERITABLE, ...TOP_LEVEL_ONLY, "env"]);
  const unknownTop = Object.keys(raw).filter((k) => !known.has(k));
  const unknownEnv = Object.keys(env).filter((k) => !INHERITABLE.includes(k) && !NOT_INHERITABLE.includes(k));
  if (unknownTop.length > 0 || unknownEnv.length > 0) {
    throw new Error(
      `fields scripts/preview-config.mjs does not know how wrangler resolves for an environment: ${[...unknownTop, ...unknownEnv.map((k) => `env.${envName}.${k}`)].join(", ")}`,
    );
  }
  const value = (key) => {
    if (TOP_LEVEL_ONLY.includes(key)) return raw[key];
    if (NOT_INHERITABLE.includes(key)) return env[key];
    if (key === "name") return env.name ?? (raw.name ? `${raw.name}-${envName}` : undefined);
    return env[key] ?? raw[key];
  };
  // In wrangler.toml's order, then the environment's own fields.
  const keys = [...new Set([...Object.keys(raw), ...Object.keys(env)])].filter((k) => k !== "env");
  const resolved = {};
  for (const key of keys) {
    const v = value(key);
    if (v !== undefined) resolved[key] = structuredClone(v);
  }
  return resolved;
}

/** `<name>-pr-<N>`: a pull request's copy of something [env.preview] names. */
export function perPullRequest(name, pr) {
  return `${name}-pr-${pr}`;
}

/**
 * Pull request `pr`'s preview config: [env.preview] resolved, with its Worker, D1 databases,
 * R2 buckets and queues renamed `…-pr-<pr>`. `databaseIds` maps each renamed database to the
 * id `wrangler d1 create` gave it; without it the config only names things (for `down`).
 * Throws when [env.preview] has something two previews would share that this does not copy.
 */
export function previewConfig(raw, pr, databaseIds) {
  const config = resolveEnvironment(raw, PREVIEW_ENV);
  const shared = NOT_INHERITABLE.filter((k) => config[k] !== undefined && !PER_PULL_REQUEST.includes(k) && !AS_IS.includes(k));
  if (shared.length > 0) {
    throw new Error(`[env.${PREVIEW_ENV}] has ${shared.join(", ")}, which every pull request's preview would share: previews get their own D1, R2 and queues only (scripts/preview-config.mjs)`);
  }
  if (!config.name) throw new Error(`[env.${PREVIEW_ENV}] has no name, and neither has the top level`);
  config.name = perPullRequest(config.name, pr);
  delete config.route;
  delete config.routes;
  config.workers_dev = true;
  for (const db of config.d1_databases ?? []) {
    db.database_name = perPullRequest(db.database_name, pr);
    delete db.preview_database_id;
    if (databaseIds) {
      const id = databaseIds[db.database_name];
      if (!id) throw new Error(`no database_id for D1 database ${db.database_name}`);
      db.database_id = id;
    } else {
      delete db.database_id;
    }
  }
  for (const bucket of config.r2_buckets ?? []) {
    if (bucket.jurisdiction) throw new Error(`R2 bucket ${bucket.bucket_name} has a jurisdiction, which scripts/preview.mjs does not create buckets in`);
    bucket.bucket_name = perPullRequest(bucket.bucket_name, pr);
    delete bucket.preview_bucket_name;
  }
  for (const producer of config.queues?.producers ?? []) producer.queue = perPullRequest(producer.queue, pr);
  for (const consumer of config.queues?.consumers ?? []) {
    consumer.queue = perPullRequest(consumer.queue, pr);
    if (consumer.dead_letter_queue) consumer.dead_letter_queue = perPullRequest(consumer.dead_letter_queue, pr);
  }
  for (const binding of config.durable_objects?.bindings ?? []) {
    if (binding.script_name) throw new Error(`Durable Object binding ${binding.name} is another Worker's (${binding.script_name}), which every preview would share`);
  }
  return config;
}

/** What a preview config names: its Worker, and the D1 databases, R2 buckets and queues to create or delete. */
export function previewResources(config) {
  const queues = [
    ...(config.queues?.producers ?? []).map((p) => p.queue),
    ...(config.queues?.consumers ?? []).map((c) => c.queue),
    ...(config.queues?.consumers ?? []).map((c) => c.dead_letter_queue).filter(Boolean),
  ];
  return {
    worker: config.name,
    databases: [...new Set((config.d1_databases ?? []).map((d) => d.database_name))],
    buckets: [...new Set((config.r2_buckets ?? []).map((b) => b.bucket_name))],
    queues: [...new Set(queues)],
  };
}

/** The config file's text (JSONC, which wrangler reads like wrangler.toml). */
export function previewConfigText(config, pr) {
  return (
    `// Pull request ${pr}'s preview, written by scripts/preview.mjs from wrangler.toml's [env.${PREVIEW_ENV}]\n` +
    `// as wrangler resolves it, with per-pull-request names. Deployed without --env. Do not edit.\n` +
    `${JSON.stringify(config, null, 2)}\n`
  );
}
