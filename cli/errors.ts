import { printable, wholeChars } from "./output";

/**
 * What a command failed with, and the exit code it means: 1 for a failure (the API refused,
 * the network), 2 for bad usage (a missing flag, no key configured). `hint` names the fix.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Bad usage: exit 2. */
export class UsageError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, 2, hint);
  }
}

/** The problem+json body every API error carries. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  errors?: { path: string; message: string }[];
  request_id?: string;
}

/**
 * An API error as one line, `<title>: <detail> (field: message; …)` from its problem+json,
 * else `HTTP <status> <status text> (<content type>): <excerpt>` (an HTML page from a proxy,
 * or a server that is not Switchboard's); with the problem, if any.
 */
export function describeProblem(status: number, text: string, statusText = "", contentType: string | null = null): { problem: Problem | null; message: string } {
  let problem: Problem | null = null;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) problem = parsed as Problem;
  } catch {
    // not JSON
  }
  if (problem?.title) {
    const fields = problem.errors?.length ? ` (${problem.errors.map((e) => `${e.path}: ${e.message}`).join("; ")})` : "";
    return { problem, message: `${problem.title}: ${problem.detail ?? ""}${fields}`.replace(/: $/, "") };
  }
  const type = contentType?.split(";")[0]?.trim();
  const excerpt = bodyExcerpt(text);
  return { problem, message: `HTTP ${status}${statusText ? ` ${statusText}` : ""}${type ? ` (${type})` : ""}${excerpt ? `: ${excerpt}` : ""}` };
}

/**
 * At most `max` characters of a body that is not problem+json, on one line and safe to print:
 * an HTML page's text without its tags. The whole page would bury the one line an error is.
 */
export function bodyExcerpt(text: string, max = 100): string {
  const start = text.slice(0, 10_000);
  const plain = /^\s*</.test(start) ? start.replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, " ").replace(/<[^>]*>?/g, " ") : start;
  const flat = plain.replace(/\s+/g, " ").trim();
  return printable(flat.length > max ? `${wholeChars(flat.slice(0, max - 1)).trimEnd()}…` : flat);
}

/**
 * What Node's fetch says when it reached no server: a TypeError ("fetch failed", or
 * "terminated" when the connection broke mid-answer) whose `cause` is the socket's, DNS's or
 * TLS's error. One line naming the cause (`connect ECONNREFUSED 127.0.0.1:8792`, `getaddrinfo
 * ENOTFOUND host`), or null for anything else (a TypeError of ours, an invalid URL among them).
 */
export function networkFailure(error: unknown): string | null {
  if (!(error instanceof TypeError) || !(error.cause instanceof Error)) return null;
  // `localhost` tried as ::1 and 127.0.0.1 fails as an AggregateError of both.
  const cause = error.cause instanceof AggregateError && error.cause.errors[0] instanceof Error ? (error.cause.errors[0] as Error) : error.cause;
  const code = (cause as NodeJS.ErrnoException).code ?? (error.cause as NodeJS.ErrnoException).code;
  const message = (cause.message.split("\n")[0] ?? "").trim();
  if (code?.startsWith("ERR_SSL_")) return `${code}: the TLS handshake failed (an https:// URL for a server that speaks plain http?)`;
  const said = !code || message.includes(code) ? message || code || error.message : `${code}: ${message}`;
  return said.length > 200 ? `${said.slice(0, 199)}…` : said;
}
