import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  INHERITABLE,
  NOT_INHERITABLE,
  TOP_LEVEL_ONLY,
  previewConfig,
  previewConfigText,
  previewResources,
  readRawConfig,
  resolveEnvironment,
  // @ts-expect-error plain ESM script without types
} from "../../scripts/preview-config.mjs";

/**
 * scripts/preview-config.mjs: a pull request's preview is wrangler.toml's [env.preview] as
 * wrangler 4.156 resolves it, with per-pull-request names. wrangler itself is the judge: its
 * own config reader (unstable_readConfig) and `wrangler deploy --dry-run`.
 */

type Raw = Record<string, unknown> & { env?: Record<string, Record<string, unknown>> };
type Config = Record<string, unknown>;
const wrangler = createRequire(import.meta.url)("wrangler") as {
  unstable_readConfig: (args: { config: string; env?: string }, options?: { hideWarnings?: boolean }) => Config;
};
const WRANGLER_CLI = "node_modules/wrangler/wrangler-dist/cli.js";
const IDS = { "switchboard-preview-pr-42": "11111111-2222-3333-4444-555555555555" };
const raw = (): Raw => readRawConfig("wrangler.toml");

/** Writes `text` next to wrangler.toml (relative paths in it are relative to that directory), runs `use`, removes it. */
function withConfigFile<T>(text: string, ext: string, use: (path: string) => T): T {
  const path = join(process.cwd(), `wrangler.pr-test-${process.pid}-${Math.random().toString(36).slice(2)}.${ext}`);
  try {
    writeFileSync(path, text);
    return use(path);
  } finally {
    rmSync(path, { force: true });
  }
}

/** What wrangler resolves from a config, without the fields that say where it was read from. */
function resolved(path: string, env?: string): Config {
  const {
    configPath: _c,
    userConfigPath: _u,
    topLevelName: _t,
    definedEnvironments: _d,
    targetEnvironment: _e,
    ...rest
  } = wrangler.unstable_readConfig({ config: path, ...(env ? { env } : {}) }, { hideWarnings: true });
  return rest;
}

function dryRun(configText: string): string {
  const dir = mkdtempSync(join(tmpdir(), "preview-dry-run-"));
  try {
    return withConfigFile(configText, "jsonc", (config) => {
      const env: NodeJS.ProcessEnv = { ...process.env, WRANGLER_SEND_METRICS: "false" };
      delete env.CLOUDFLARE_ENV;
      return execFileSync("npx", ["wrangler", "deploy", "--dry-run", "--config", config, "--outdir", dir], { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** wrangler.toml with one line of [env.preview] (after the header) or of the top level (before it) replaced. */
function edit(toml: string, where: "top" | "env.preview", from: string, to: string): string {
  const at = toml.indexOf("[env.preview]");
  const [top, env] = [toml.slice(0, at), toml.slice(at)];
  if (where === "top") {
    expect(top).toContain(from);
    return top.replace(from, to) + env;
  }
  expect(env).toContain(from);
  return top + env.replace(from, to);
}

describe("a pull request's preview config", () => {
  it("is [env.preview] with the pull request's own Worker, D1, bucket and queues, and nothing of production's", () => {
    const config = previewConfig(raw(), 42, IDS);
    expect(config.name).toBe("switchboard-preview-pr-42");
    expect(config.d1_databases).toEqual([{ binding: "DB", database_name: "switchboard-preview-pr-42", database_id: IDS["switchboard-preview-pr-42"], migrations_dir: "migrations" }]);
    expect(config.r2_buckets).toEqual([{ binding: "BUCKET", bucket_name: "switchboard-preview-pr-42" }]);
    expect(config.queues).toEqual({
      producers: [
        { binding: "CALLBACKS", queue: "switchboard-preview-callbacks-pr-42" },
        { binding: "NOTIFICATIONS", queue: "switchboard-preview-notifications-pr-42" },
      ],
      consumers: [
        { queue: "switchboard-preview-callbacks-pr-42", max_batch_timeout: 0, max_batch_size: 100, max_retries: 5, dead_letter_queue: "switchboard-preview-callbacks-dlq-pr-42" },
        { queue: "switchboard-preview-callbacks-dlq-pr-42", max_batch_timeout: 0 },
        { queue: "switchboard-preview-notifications-pr-42", max_batch_timeout: 0, max_batch_size: 10, max_retries: 5, dead_letter_queue: "switchboard-preview-notifications-dlq-pr-42" },
        { queue: "switchboard-preview-notifications-dlq-pr-42", max_batch_timeout: 0 },
      ],
    });
    // [env.preview]'s own: its secrets list, vars, crons, DO bindings; migrations inherited.
    const env = raw().env?.preview as Record<string, unknown>;
    expect(config.secrets).toEqual(env.secrets);
    expect(config.vars).toEqual(env.vars);
    expect(config.triggers).toEqual(env.triggers);
    expect(config.durable_objects).toEqual(env.durable_objects);
    expect(config.migrations).toEqual(raw().migrations);
    expect(config.workers_dev).toBe(true);
    expect(config).not.toHaveProperty("env");
    const text = previewConfigText(config, 42);
    // Not production's names or the standing [env.preview]'s, nor its database id.
    expect(text).not.toMatch(/"switchboard"|"switchboard-(callbacks|notifications)(-dlq)?"|"switchboard-preview"|"switchboard-preview-(callbacks|notifications)(-dlq)?"|0000-000000000001/);
    expect(previewResources(config)).toEqual({
      worker: "switchboard-preview-pr-42",
      databases: ["switchboard-preview-pr-42"],
      buckets: ["switchboard-preview-pr-42"],
      queues: ["switchboard-preview-callbacks-pr-42", "switchboard-preview-notifications-pr-42", "switchboard-preview-callbacks-dlq-pr-42", "switchboard-preview-notifications-dlq-pr-42"],
    });
  });

  it("gives two pull requests nothing in common", () => {
    const a = previewResources(previewConfig(raw(), 4));
    const b = previewResources(previewConfig(raw(), 42));
    const all = (r: { worker: string; databases: string[]; buckets: string[]; queues: string[] }) => [r.worker, ...r.databases, ...r.buckets, ...r.queues];
    expect(all(a).filter((n) => all(b).includes(n))).toEqual([]);
    // Without ids (what `down` uses) it names the database but carries no id at all.
    expect(previewConfig(raw(), 4).d1_databases).toEqual([{ binding: "DB", database_name: "switchboard-preview-pr-4", migrations_dir: "migrations" }]);
    expect(() => previewConfig(raw(), 4, {})).toThrow(/no database_id for D1 database switchboard-preview-pr-4/);
  });

  it("is what wrangler resolves for --env preview: the flattened environment reads, without --env, as wrangler.toml with --env preview", () => {
    const expected = resolved("wrangler.toml", "preview");
    const flat = resolveEnvironment(raw(), "preview");
    const actual = withConfigFile(JSON.stringify(flat), "jsonc", (path) => resolved(path));
    expect(actual).toEqual(expected);
    expect(actual.name).toBe("switchboard-preview");
  });

  it("follows wrangler's inheritance for fields wrangler.toml does not use yet", () => {
    // The top level sets inherited fields, bindings and top-level-only ones; the environment
    // has no name, overrides one inherited field and has a var of its own.
    const toml = `name = "app"
main = "src/index.ts"
compatibility_date = "2026-10-20"
compatibility_flags = ["nodejs_compat"]
minify = true
keep_names = false
routes = [{ pattern = "app.example.com", custom_domain = true }]
keep_vars = true
[observability]
enabled = true
[limits]
cpu_ms = 100
[vars]
TOP = "1"
[define]
X = "1"
[[kv_namespaces]]
binding = "KV"
id = "kv-production"
[[services]]
binding = "OTHER"
service = "other"
[env.staging]
minify = false
[env.staging.vars]
ENV = "1"
`;
    withConfigFile(toml, "toml", (path) => {
      const source = readRawConfig(path);
      const flat = resolveEnvironment(source, "staging");
      expect(flat).toMatchObject({ name: "app-staging", minify: false, keep_names: false, compatibility_flags: ["nodejs_compat"], keep_vars: true, vars: { ENV: "1" } });
      for (const binding of ["kv_namespaces", "services", "define"]) expect(flat).not.toHaveProperty(binding);
      const actual = withConfigFile(JSON.stringify(flat), "jsonc", (flatPath) => resolved(flatPath));
      expect(actual).toEqual(resolved(path, "staging"));
    });
  });

  it("takes a change to [env.preview] (a var) and not a top-level-only change, as wrangler deploy --dry-run shows", () => {
    let toml = readFileSync("wrangler.toml", "utf8");
    toml = edit(toml, "env.preview", 'LOG_LEVEL = "info"', 'LOG_LEVEL = "debug"');
    toml = edit(toml, "top", 'STREAM_HISTORY = "1000"', 'STREAM_HISTORY = "7777"\nTOP_ONLY = "production"');
    // A binding only the top level has stays production's.
    toml = edit(toml, "top", "[triggers]", '[[kv_namespaces]]\nbinding = "PROD_KV"\nid = "0123456789abcdef0123456789abcdef"\n\n[triggers]');
    // An inherited field changed at the top level is inherited, as wrangler would.
    toml = edit(toml, "top", "keep_names = false", "keep_names = false\nminify = true");
    const config = withConfigFile(toml, "toml", (path) => previewConfig(readRawConfig(path), 42, IDS));
    expect(config.vars).toEqual({ STREAM_HISTORY: "1000", HEARTBEAT_MS: "15000", LOG_LEVEL: "debug", NOTIFY_MAX_BACKOFF_SECONDS: "300" });
    expect(config.minify).toBe(true);
    expect(config).not.toHaveProperty("kv_namespaces");
    // wrangler accepts it and binds what it should: bundle it as a deploy would, without deploying.
    const out = dryRun(previewConfigText(config, 42));
    expect(out).toContain('env.LOG_LEVEL ("debug")');
    expect(out).toContain('env.STREAM_HISTORY ("1000")');
    expect(out).not.toContain("7777");
    expect(out).not.toContain("TOP_ONLY");
    expect(out).not.toContain("PROD_KV");
    expect(out).toMatch(/env\.CALLBACKS \(switchboard-preview-callbacks-pr-42\)\s+Queue/);
    expect(out).toMatch(/env\.NOTIFICATIONS \(switchboard-preview-notifications-pr-42\)\s+Queue/);
    expect(out).toMatch(/env\.DB \(switchboard-preview-pr-42\)\s+D1 Database/);
    expect(out).toMatch(/env\.BUCKET \(switchboard-preview-pr-42\)\s+R2 Bucket/);
    expect(out).toMatch(/env\.SESSION_HUB \(SessionHub\)\s+Durable Object/);
    expect(out).not.toMatch(/\(switchboard\)|switchboard-callbacks|switchboard-notifications/);
  }, 60_000);

  it("takes no routes: a preview is served on workers.dev", () => {
    const source = raw();
    source.routes = [{ pattern: "switchboard.example.com", custom_domain: true }];
    (source.env as Record<string, Record<string, unknown>>).preview!.route = "preview.example.com/*";
    const config = previewConfig(source, 42, IDS);
    expect(config).not.toHaveProperty("routes");
    expect(config).not.toHaveProperty("route");
    expect(config.workers_dev).toBe(true);
  });

  it("refuses what every preview would share, and fields it does not know", () => {
    const withEnv = (extra: Record<string, unknown>) => {
      const source = raw();
      Object.assign((source.env as Record<string, Record<string, unknown>>).preview!, extra);
      return source;
    };
    expect(() => previewConfig(withEnv({ kv_namespaces: [{ binding: "KV", id: "kv" }] }), 1)).toThrow(/\[env\.preview\] has kv_namespaces/);
    expect(() => previewConfig(withEnv({ workflows: [{ binding: "W", name: "w", class_name: "W" }] }), 1)).toThrow(/workflows/);
    expect(() => previewConfig(withEnv({ durable_objects: { bindings: [{ name: "HUB", class_name: "SessionHub", script_name: "switchboard" }] } }), 1)).toThrow(/another Worker's \(switchboard\)/);
    expect(() => previewConfig(withEnv({ r2_buckets: [{ binding: "B", bucket_name: "b", jurisdiction: "eu" }] }), 1)).toThrow(/jurisdiction/);
    expect(() => previewConfig(withEnv({ brand_new_binding: [] }), 1)).toThrow(/env\.preview\.brand_new_binding/);
    const source = raw();
    delete source.env;
    expect(() => previewConfig(source, 1)).toThrow(/no \[env\.preview\]/);
  });
});

describe("the lists of inherited and not inherited fields", () => {
  /** The text of one function in wrangler's bundle (a `function f(` or a `f = __name(` one). */
  function body(src: string, name: string): string {
    const declared = src.indexOf(`function ${name}(`);
    if (declared >= 0) return src.slice(declared, src.indexOf("\n}", declared));
    const assigned = src.indexOf(`${name} = /* @__PURE__ */ __name(`);
    expect(assigned, name).toBeGreaterThanOrEqual(0);
    return src.slice(assigned, src.indexOf(`}, "${name}")`, assigned));
  }
  const fields = (text: string, kind: "inheritable" | "notInheritable") =>
    [...text.matchAll(/\b(notInheritable|inheritable)\(\s*diagnostics,[^"]*?"(\w+)"/g)].filter((m) => m[1] === kind).map((m) => m[2] as string);
  const literalKeys = (text: string, start: string) => {
    const from = text.indexOf(start);
    return [...text.slice(from, text.indexOf("\n  };", from)).matchAll(/^ {4}(\$?\w+)(?::|,)/gm)].map((m) => m[1] as string);
  };
  const sorted = (xs: string[]) => [...new Set(xs)].sort();

  it("are wrangler's own (normalizeAndValidateEnvironment and normalizeAndValidateConfig in the installed wrangler)", () => {
    const src = readFileSync(WRANGLER_CLI, "utf8");
    const env = body(src, "normalizeAndValidateEnvironment");
    const helpers = ["normalizeAndValidateRoute", "validateRoutes", "validateAndNormalizeTsconfig", "validateAndNormalizeRules", "normalizeAndValidateAssets", "normalizeAndValidateLimits", "normalizeAndValidatePlacement"];
    const texts = [env, ...helpers.map((h) => body(src, h))];
    // `build` is inherited without the helper: rawEnv.build ?? topLevelEnv?.build.
    expect(env).toMatch(/rawEnv\.build \?\? topLevelEnv\?\.build/);
    expect(sorted(INHERITABLE)).toEqual(sorted([...texts.flatMap((t) => fields(t, "inheritable")), "build"]));
    expect(sorted(NOT_INHERITABLE)).toEqual(sorted(texts.flatMap((t) => fields(t, "notInheritable"))));
    // Every field of a resolved environment is in one of the two lists.
    expect(sorted(literalKeys(env, "const environment = {"))).toEqual(sorted([...INHERITABLE, ...NOT_INHERITABLE]));
    // What the config takes from the top level besides the environment (the first five say where it was read from).
    const config = body(src, "normalizeAndValidateConfig");
    const topLevel = literalKeys(config, "const config2 = {").filter((k) => !["configPath", "userConfigPath", "topLevelName", "definedEnvironments", "targetEnvironment"].includes(k));
    expect(sorted(TOP_LEVEL_ONLY)).toEqual(sorted([...topLevel, "$schema"]));
  });
});
