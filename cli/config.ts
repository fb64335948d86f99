import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { UsageError } from "./errors";

/** Where `switchboard login` stores the URL and key, and what the CLI uses when no env var says otherwise. */
export const DEFAULT_URL = "http://127.0.0.1:8787";

export interface StoredConfig {
  url: string;
  api_key: string;
}

export interface ResolvedConfig {
  baseUrl: string;
  apiKey: string;
  /**
   * Where each value came from: an env var wins over the config file, which wins over the
   * default URL (`flag`: `switchboard login --url`).
   */
  source: { url: "env" | "config" | "default" | "flag"; apiKey: "env" | "config" };
  /** The config file, whether or not it exists. */
  path: string;
}

/** `$XDG_CONFIG_HOME/switchboard/config.json`, by default `~/.config/switchboard/config.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "switchboard", "config.json");
}

/** The stored config, or null when there is none; a file that is not ours is bad usage, naming the fix. */
export function readStoredConfig(env: NodeJS.ProcessEnv = process.env): Partial<StoredConfig> | null {
  const path = configPath(env);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new UsageError(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not a JSON object");
    const { url, api_key } = value as Record<string, unknown>;
    return { url: typeof url === "string" ? url : undefined, api_key: typeof api_key === "string" ? api_key : undefined };
  } catch (e) {
    throw new UsageError(`${path} is not a Switchboard config (${(e as Error).message})`, "run `switchboard login --url URL --key KEY` to write it again");
  }
}

/**
 * The URL and key to use: `SWITCHBOARD_URL` and `SWITCHBOARD_API_KEY` override the file
 * `switchboard login` wrote, each on its own; with neither, the URL is the local dev Worker.
 * No key anywhere is bad usage (exit 2), with the two ways to fix it.
 *
 * @example const { baseUrl, apiKey } = loadConfig(process.env);
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const path = configPath(env);
  const stored = readStoredConfig(env);
  const url = env.SWITCHBOARD_URL ? { value: env.SWITCHBOARD_URL, from: "env" as const } : stored?.url ? { value: stored.url, from: "config" as const } : { value: DEFAULT_URL, from: "default" as const };
  const key = env.SWITCHBOARD_API_KEY ? { value: env.SWITCHBOARD_API_KEY, from: "env" as const } : stored?.api_key ? { value: stored.api_key, from: "config" as const } : null;
  if (!key) {
    throw new UsageError("no API key: Switchboard does not know who you are", "run `switchboard login --url URL --key KEY` (stored in " + path + "), or set SWITCHBOARD_API_KEY (and SWITCHBOARD_URL)");
  }
  // Checked here, before anything is sent: a URL that cannot be one would fail every request
  // alike (an agent's would be retried, then written as sentinels, as if the API were down).
  checkUrl(url.value, url.from === "env" ? "SWITCHBOARD_URL" : `the url in ${path}`);
  return { baseUrl: url.value, apiKey: key.value, source: { url: url.from, apiKey: key.from }, path };
}

/**
 * Bad usage (exit 2) naming `name` unless `url` is an http(s) URL: `127.0.0.1:8792`, without
 * its scheme, is not one (nor is `localhost:8792`, a URL of the scheme `localhost:`).
 */
export function checkUrl(url: string, name: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${name} is not a URL: ${url}`, `give the Worker's base URL with its scheme, e.g. ${/^[\w.-]+(:\d+)?(\/|$)/.test(url) ? `http://${url}` : "https://switchboard.example.workers.dev"}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UsageError(`${name} must be an http or https URL, not ${parsed.protocol} (${url})`, `give the Worker's base URL with its scheme, e.g. http://${url.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "")}`);
  }
  return parsed;
}

/** How a hint names where the URL came from, with its value. */
export function urlSource(config: Pick<ResolvedConfig, "baseUrl" | "source" | "path">): string {
  switch (config.source.url) {
    case "env":
      return `SWITCHBOARD_URL (${config.baseUrl})`;
    case "config":
      return `the URL \`switchboard login\` stored in ${config.path} (${config.baseUrl})`;
    case "flag":
      return `--url (${config.baseUrl})`;
    default:
      return `the default URL (${config.baseUrl}; SWITCHBOARD_URL is not set and nothing is stored)`;
  }
}

/** Writes the config readable by its owner only (0600, in a 0700 directory), replacing it whole. */
export function saveConfig(config: StoredConfig, env: NodeJS.ProcessEnv = process.env): string {
  const path = configPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // A fresh file renamed over the old one: never a moment where the key sits in a wider-open file.
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(temp, 0o600); // the umask may have narrowed it further, never widened; make it exact
  renameSync(temp, path);
  return path;
}

/** A URL as people type it: no trailing slash; only http(s). `name` says where it came from, for the error. */
export function normalizeUrl(url: string, name = "--url"): string {
  return checkUrl(url, name).toString().replace(/\/+$/, "");
}
