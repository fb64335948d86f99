import { env } from "cloudflare:workers";

const LEVELS = { info: 0, warn: 1, error: 2 } as const;
export type LogLevel = keyof typeof LEVELS;

/** Whether a line of `level` is written when the deployment's LOG_LEVEL is `configured`. */
export function logs(level: LogLevel, configured: string | undefined): boolean {
  return LEVELS[level] >= (LEVELS[configured as LogLevel] ?? LEVELS.info);
}

/**
 * One JSON object per line, as Workers Logs and `wrangler tail` read them. Never pass secrets.
 * `LOG_LEVEL` (default `info`: a line per request) may raise the bar to `warn` or `error`:
 * under `wrangler dev` each line is relayed through wrangler's Node process, which halved
 * the callbacks a second this machine could take (bench/RESULTS.md).
 */
export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  if (!logs(level, env.LOG_LEVEL)) return;
  const line = JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
