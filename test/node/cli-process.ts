import { spawn } from "node:child_process";
import { join } from "node:path";

/** The built CLI run as a person's shell runs it: for the Node tests of the people's commands. */

const CLI = join(process.cwd(), "cli", "dist", "switchboard.mjs");

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a person's shell: no Switchboard variables unless given, no colour forcing, its own config dir. */
function shellEnv(home: string, env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(base)) if (name.startsWith("SWITCHBOARD_") || name === "NO_COLOR" || name === "FORCE_COLOR") delete base[name];
  return { ...base, HOME: home, ...env };
}

export function runCli(home: string, args: string[], env: Record<string, string | undefined>, options: { stdin?: string; onStdout?: (text: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: shellEnv(home, env), stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      options.onStdout?.(stdout, child);
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? "");
  });
}

/** A long-running command (`status --watch`): its output so far, a wait for what it should print, and its end. */
export function startCli(home: string, args: string[], env: Record<string, string | undefined>) {
  const child = spawn(process.execPath, [CLI, ...args], { env: shellEnv(home, env), stdio: ["ignore", "pipe", "pipe"] });
  const out = { stdout: "", stderr: "" };
  child.stdout.on("data", (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<Run>((resolve) => child.on("close", (code) => resolve({ code, ...out })));
  /** Resolves once `check` holds for the output, or fails after `ms` with the output so far. */
  const waitFor = async (check: (o: typeof out) => boolean, ms: number, what: string) => {
    const until = Date.now() + ms;
    while (!check(out)) {
      if (Date.now() > until || child.exitCode !== null) throw new Error(`no ${what} within ${ms} ms:\nstdout: ${out.stdout.slice(-3000)}\nstderr: ${out.stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return { child, out, waitFor, exited };
}

