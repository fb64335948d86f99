import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { argvCommand } from "../../cli/commands/argv-command";
import { COMMANDS, main } from "../../cli/switchboard";

/** Dispatch without a Worker: commands that parse their own argv, `--`, usage errors, help. */

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d: Buffer) => (out += d.toString()));
  stderr.on("data", (d: Buffer) => (err += d.toString()));
  return { io: { stdout, stderr, stdin: new PassThrough() }, output: () => ({ out, err }) };
}

describe("argvCommand (commands that parse their own arguments)", () => {
  const calls: string[][] = [];
  const fake = argvCommand({
    name: "stand-in",
    summary: "a stand-in for the worker daemon",
    usage: "switchboard stand-in --role ROLE [-- <agent command …>]",
    run: async (argv) => {
      calls.push(argv);
      if (argv.includes("--bad")) throw Object.assign(new Error("--bad is not an option"), { name: "UsageError" });
      if (argv.includes("--unknown")) throw Object.assign(new TypeError("Unknown option '--unknown'"), { code: "ERR_PARSE_ARGS_UNKNOWN_OPTION" });
      return argv.includes("--fail") ? 1 : 0;
    },
  });
  const commands = [...COMMANDS, fake];

  it("gets every argument in order, and the agent command after -- untouched", async () => {
    const { io: streams } = io();
    expect(await main(["stand-in", "--role", "executor", "--name", "x", "--", "claude", "-p", "--output-format", "json"], {}, streams, commands)).toBe(0);
    expect(calls.at(-1)).toEqual(["--role", "executor", "--name", "x", "--", "claude", "-p", "--output-format", "json"]);
    expect(await main(["stand-in", "--role", "executor", "--fail"], {}, streams, commands)).toBe(1);
    expect(calls.at(-1)).toEqual(["--role", "executor", "--fail"]);
  });

  it("maps its usage errors to exit 2, prints its usage for --help, and is listed in the help", async () => {
    const a = io();
    expect(await main(["stand-in", "--bad"], {}, a.io, commands)).toBe(2);
    expect(a.output().err).toContain("error: --bad is not an option");
    expect(await main(["stand-in", "--unknown"], {}, a.io, commands)).toBe(2);
    const b = io();
    expect(await main(["stand-in", "--help"], {}, b.io, commands)).toBe(0);
    expect(b.output().out).toContain("switchboard stand-in --role ROLE");
    const c = io();
    expect(await main(["--help"], {}, c.io, commands)).toBe(0);
    expect(c.output().out).toMatch(/stand-in \[args\.\.\.\]\s+a stand-in for the worker daemon/);
  });
});

describe("dispatch", () => {
  it("exits 2 for no command or an unknown one, 0 for help and --version", async () => {
    expect(await main([], {}, io().io)).toBe(2);
    expect(await main(["frobnicate"], {}, io().io)).toBe(2);
    const v = io();
    expect(await main(["--version"], {}, v.io)).toBe(0);
    expect(v.output().out).toMatch(/^\d+\.\d+\.\d+/);
    expect(await main(["help", "tasks"], {}, io().io)).toBe(0);
  });

  it("does not split at -- for a command that takes no agent command", async () => {
    const x = io();
    // `respond` gets `--` as commander reads it: what follows is positional, even if it looks like a flag.
    expect(await main(["respond", "--", "q_1", "-1 is the answer"], { XDG_CONFIG_HOME: "/nonexistent" }, x.io)).toBe(2);
    expect(x.output().err).toContain("no API key");
  });
});
