import { constants } from "node:os";
import type { Command } from "commander";
import { type Colors, colorsFor } from "./output";

/** What every command gets: the environment, the streams, colours, and the words after `--`. */
export interface Context {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WriteStream | NodeJS.WritableStream;
  stderr: NodeJS.WriteStream | NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  /** stdout is a terminal: colour (unless NO_COLOR), screen clearing, relative times. */
  tty: boolean;
  color: Colors;
  /** Colours for stderr, decided by whether stderr is a terminal. */
  errColor: Colors;
  /** Everything after the first `--`, for commands registered with `takesAgentCommand` (else null). */
  agentCommand: string[] | null;
  /** Set by the command's action (see `action`). */
  exitCode: number;
  out(text: string): void;
  err(text: string): void;
}

export interface Io {
  stdout: Context["stdout"];
  stderr: Context["stderr"];
  stdin: NodeJS.ReadableStream;
}

/** One CLI command in its own module: it adds itself to the program. */
export interface CliCommand {
  name: string;
  /** Run/worker-style commands take an agent command after `--`, passed through untouched. */
  takesAgentCommand?: boolean;
  register(program: Command, ctx: Context): void;
}

export function createContext(env: NodeJS.ProcessEnv, io: Partial<Io> = {}): Context {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  // A reader that went away (`| head -1`: EPIPE; a closed terminal: EIO) ends the printing, not
  // the command: unhandled, the error would end the process mid-run, an agent's step unreported.
  let stdoutGone = false;
  stdout.on("error", () => void (stdoutGone = true));
  stderr.on("error", () => {});
  const tty = "isTTY" in stdout && stdout.isTTY === true;
  const errTty = "isTTY" in stderr && stderr.isTTY === true;
  return {
    env,
    stdout,
    stderr,
    stdin: io.stdin ?? process.stdin,
    tty,
    color: colorsFor(tty, env),
    errColor: colorsFor(errTty, env),
    agentCommand: null,
    exitCode: 0,
    out: (text) => void (stdoutGone || stdout.write(text)),
    err: (text) => void stderr.write(text),
  };
}

/** Wraps a command's action so that the exit code it returns becomes the process's. */
export function action<A extends unknown[]>(ctx: Context, fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    ctx.exitCode = (await fn(...args)) ?? 0;
  };
}

/** The signals that stop a command: Ctrl-C, a request to stop, and a closed terminal or dropped SSH session. */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * `signal` aborts when the user presses Ctrl-C (or the process is told to stop, or its terminal
 * goes away); `dispose` removes the handlers; `exitCode` is 128 + the first signal's number (130
 * for Ctrl-C, 129 for SIGHUP, 143 for SIGTERM), as a shell reports a process that signal ended.
 * By default a second signal gets Node's default (the process ends). With `repeat` (the
 * runner, whose agent runs in its own process group and would outlive it) the handlers stay:
 * the second aborts `again`, a third exits at once.
 */
export function interruption(options: { repeat?: boolean } = {}): { signal: AbortSignal; again: AbortSignal; exitCode(): number; dispose(): void } {
  const first = new AbortController();
  const second = new AbortController();
  let count = 0;
  let exitCode = 130;
  const stop = (name: NodeJS.Signals) => {
    count += 1;
    if (count === 1) {
      exitCode = 128 + (constants.signals[name] ?? 2);
      first.abort();
    } else if (count === 2) second.abort();
    else process.exit(exitCode);
  };
  const listen = options.repeat ? process.on.bind(process) : process.once.bind(process);
  for (const name of STOP_SIGNALS) listen(name, stop);
  return {
    signal: first.signal,
    again: second.signal,
    exitCode: () => exitCode,
    dispose() {
      for (const name of STOP_SIGNALS) process.off(name, stop);
    },
  };
}

/** Waits `ms`, or less when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** All of stdin as text (for `--key -`, `--description -`, an answer of `-`). */
export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8");
}
