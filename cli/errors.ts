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
 * else `HTTP <status>: <body>` (an HTML page from a proxy, say); with the problem, if any.
 */
export function describeProblem(status: number, text: string, statusText = ""): { problem: Problem | null; message: string } {
  let problem: Problem | null = null;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) problem = parsed as Problem;
  } catch {
    // not JSON
  }
  const fields = problem?.errors?.length ? ` (${problem.errors.map((e) => `${e.path}: ${e.message}`).join("; ")})` : "";
  const message = problem?.title ? `${problem.title}: ${problem.detail ?? ""}${fields}`.replace(/: $/, "") : `HTTP ${status}: ${text.slice(0, 200).trim() || statusText}`;
  return { problem, message };
}
