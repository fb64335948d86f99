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
