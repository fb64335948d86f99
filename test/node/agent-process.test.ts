import { afterAll, describe, expect, it } from "vitest";
import { MAX_LINE_CHARS, startAgent } from "../../cli/worker/agent-process";
import { truncateLine } from "../../cli/worker/log-shipper";
import { alive } from "./runner-helpers";

const leftovers: number[] = [];
afterAll(() => {
  for (const pid of leftovers) if (alive(pid)) process.kill(pid, "SIGKILL");
});

describe("the worker's agent process", () => {
  it("keeps multibyte characters whole when they straddle reads, in lines, chunks and the kept output", async () => {
    // "€" is E2 82 AC: written a byte at a time, with pauses, so each byte is its own read.
    const script = `const b = Buffer.from("h€llo 🚀\\n", "utf8"); let i = 0; const t = setInterval(() => { if (i >= b.length) { clearInterval(t); return; } process.stdout.write(b.subarray(i, i + 1)); i++; }, 5);`;
    const lines: string[] = [];
    let chunks = "";
    const run = startAgent({ command: [process.execPath, "-e", script], cwd: process.cwd(), env: process.env, input: "", onLine: (_s, line) => lines.push(line), onChunk: (_s, text) => (chunks += text) });
    expect((await run.exited).code).toBe(0);
    expect(lines).toEqual(["h€llo 🚀"]);
    expect(chunks).toBe("h€llo 🚀\n");
    expect(run.stdout()).toBe("h€llo 🚀\n");
  });

  it("ends when the agent exits: what it left in its group is stopped (holding its stdout, or ignoring SIGTERM), what it wrote is read, one that left the group is not waited for", async () => {
    // Each child would sleep past the test's timeout: waiting for the pipes to close (every
    // holder gone) rather than for the agent's exit never ends in time.
    // The agent exits once the last two have become sleep (TERM ignored, own session).
    const ready = `for p in $b $c; do until [ "$(ps -o comm= -p $p)" = sleep ]; do sleep 0.01; done; done`;
    const script = `sleep 120 & a=$!; (trap "" TERM; exec sleep 120) >/dev/null 2>&1 & b=$!; setsid sleep 120 & c=$!; ${ready}; echo "children $a $b $c"; printf "no newline at the end"; exit 0`;
    const lines: string[] = [];
    const run = startAgent({ command: ["sh", "-c", script], cwd: process.cwd(), env: process.env, input: "", onLine: (_s, line) => lines.push(line) });
    const exit = await run.exited;
    const [inGroup, stubborn, escaped] = (/children (\d+) (\d+) (\d+)/.exec(lines.join("\n")) ?? []).slice(1).map(Number);
    leftovers.push(...[inGroup, stubborn, escaped].filter((pid): pid is number => pid !== undefined));
    expect(exit).toEqual({ code: 0, signal: null });
    expect(lines).toEqual([`children ${inGroup} ${stubborn} ${escaped}`, "no newline at the end"]);
    expect(alive(inGroup as number), "the child holding stdout").toBe(false);
    expect(alive(stubborn as number), "the child ignoring SIGTERM").toBe(false);
    // Out of the agent's group (setsid): neither stopped nor waited for; it still holds stdout.
    expect(alive(escaped as number), "the child that left the group").toBe(true);
  });

  it("one 40 MB line is one log line, kept only as far as the logs take it (cut and marked as the whole would be), and the lines after it are whole", async () => {
    // Searching the whole unfinished line again on each chunk would be quadratic (the test's
    // timeout catches that); sending it in pieces as it grows shipped hundreds of log lines for
    // it. How fast it is belongs in bench/, not here. The pipe hands it over in chunks, with
    // multibyte characters straddling some of them.
    const piece = "h€llo 🚀 ";
    const count = Math.ceil((40 * 1024 * 1024) / Buffer.byteLength(piece));
    const script = `process.stdout.write(${JSON.stringify(piece)}.repeat(${count})); process.stdout.write("\\nafter\\r\\n"); process.stderr.write("on stderr")`;
    const lines: Array<[string, string]> = [];
    const run = startAgent({ command: [process.execPath, "-e", script], cwd: process.cwd(), env: process.env, input: "", onLine: (stream, line) => lines.push([stream, line]) });
    expect((await run.exited).code).toBe(0);
    const whole = piece.repeat(count);
    expect(lines.map(([stream, line]) => [stream, line.length])).toEqual([["stdout", MAX_LINE_CHARS], ["stdout", 5], ["stderr", 9]]);
    expect(lines[0]?.[1]).toBe(whole.slice(0, MAX_LINE_CHARS));
    expect(truncateLine(lines[0]?.[1] as string)).toBe(truncateLine(whole));
    expect(truncateLine(whole)).toMatch(/ …\[line truncated\]$/);
    expect(lines.slice(1)).toEqual([["stdout", "after"], ["stderr", "on stderr"]]);
    expect(run.stdout().endsWith("🚀 \nafter\r\n")).toBe(true);
  });
});
