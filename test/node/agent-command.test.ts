import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { agentCommandProblem, agentDidNotStart, resolveAgentCommand } from "../../cli/worker/agent-command";

// The worker's check of its agent command, at startup and again when a shell answers 126/127.

const dir = mkdtempSync(join(tmpdir(), "switchboard-agent-command-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { PATH: "/usr/bin:/bin" };

describe("resolveAgentCommand: a sh -c script's first word", () => {
  it("is asked of the shell that runs it when it is no program: its builtins and keywords pass", () => {
    for (const script of ["declare -r x=1; echo $x", "shopt -s nullglob; echo *", "let n=1", "alias ll='ls -l'; ll", "type claude", "[[ -n x ]] && echo y"]) {
      expect(resolveAgentCommand(["bash", "-c", script], dir, dir, env)).toEqual(["bash", "-c", script]);
    }
    for (const script of ["read -r line; echo $line", "if true; then echo y; fi", "local x 2>/dev/null; echo", ". ./env.sh; echo"]) {
      expect(resolveAgentCommand(["sh", "-c", script], dir, dir, env)).toEqual(["sh", "-c", script]);
    }
  });

  it("refuses a word neither a program on PATH nor known to the shell", () => {
    expect(() => resolveAgentCommand(["sh", "-c", "no-such-agent -p"], dir, dir, env)).toThrow("the agent command `no-such-agent -p` cannot start here: no-such-agent is not on PATH");
    expect(() => resolveAgentCommand(["sh", "-c", "./missing.sh"], dir, dir, env)).toThrow(`${join(dir, "missing.sh")} does not exist`);
  });
});

describe("agentDidNotStart", () => {
  const agent = join(dir, "my-agent");
  const PATH = `${dir}:/usr/bin:/bin`;

  it("takes a shell's 127 or 126 for the agent's own failure while the command still passes the startup check", () => {
    writeFileSync(agent, "#!/bin/sh\necho hi\n");
    chmodSync(agent, 0o755);
    const recheck = () => agentCommandProblem(["sh", "-c", "my-agent; notify-send done"], dir, { PATH });
    expect(recheck()).toBeNull();
    expect(agentDidNotStart({ code: 127, signal: null }, "sh: 1: notify-send: not found\n", recheck)).toBeNull();
    expect(agentDidNotStart({ code: 126, signal: null }, "", recheck)).toBeNull();
  });

  it("takes it for 'did not start' when the command's program is gone or not executable; a spawn error always", () => {
    writeFileSync(agent, "#!/bin/sh\necho hi\n");
    chmodSync(agent, 0o644);
    const recheck = () => agentCommandProblem(["sh", "-c", "my-agent --task"], dir, { PATH });
    expect(agentDidNotStart({ code: 126, signal: null }, "sh: 1: my-agent: Permission denied\n", recheck)).toBe(
      `it exited with 126 (a shell that could not run a command): sh: 1: my-agent: Permission denied, and ${agent} is not executable`,
    );
    rmSync(agent);
    expect(agentDidNotStart({ code: 127, signal: null }, "sh: 1: my-agent: not found\n", recheck)).toBe("it exited with 127 (a shell that could not run a command): sh: 1: my-agent: not found, and my-agent is not on PATH");
    expect(agentCommandProblem([agent], dir, { PATH })).toBe(`${agent} does not exist`);
    expect(agentDidNotStart({ code: null, signal: null, error: "spawn x ENOENT" }, "", () => null)).toBe("it could not be started: spawn x ENOENT");
  });
});
