import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bodyExcerpt, describeProblem } from "../../cli/errors";
import { runCli } from "./cli-process";

/** The people's CLI against a URL that is not a Switchboard API (a static file server), and blank text. */

const PAGE = `<!DOCTYPE HTML>
<html lang="en">
    <head>
        <meta charset="utf-8">
        <title>Error response</title>
        <style>body { color: red }</style>
    </head>
    <body>
        <h1>Error response</h1>
        <p>Error code: 404</p>
        <p>Message: File not found \u001b[2J.</p>
        ${"<p>filler</p>\n".repeat(200)}
    </body>
</html>
`;

let server: Server;
let url: string;
let home: string;
const requests: string[] = [];
beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "switchboard-cli-errors-"));
  // Like `python3 -m http.server`: HTML for everything, 404 but for one page a host serves as 200.
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(req.url === "/v1/team" ? 200 : 404, { "Content-Type": "text/html;charset=utf-8" });
    res.end(PAGE);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(home, { recursive: true, force: true });
});

const env = () => ({ XDG_CONFIG_HOME: join(home, "xdg"), SWITCHBOARD_URL: url, SWITCHBOARD_API_KEY: "sb_test" });

describe("a URL that is not a Switchboard API", () => {
  it("tasks and login print one short error line and a hint about the URL, not the page", async () => {
    const tasks = await runCli(home, ["tasks"], env());
    expect(tasks.code).toBe(1);
    const lines = tasks.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^error: HTTP 404 Not Found \(text\/html\): Error response Error response Error code: 404 Message: File not found \^\[\[2J\. filler/);
    expect((lines[0] as string).length).toBeLessThan(200);
    expect(lines[1]).toBe(`hint: ${url} may not be a Switchboard API (its errors are problem+json): check SWITCHBOARD_URL or \`switchboard login --url URL --key KEY\``);

    // A host that answers 200 with a page: not JSON, said as briefly.
    const login = await runCli(home, ["login", "--url", url, "--key", "sb_test"], env());
    expect(login.code).toBe(1);
    const loginLines = login.stderr.trimEnd().split("\n");
    expect(loginLines).toHaveLength(2);
    expect(loginLines[0]).toMatch(/^error: GET \/v1\/team answered 200 \(text\/html\) with something that is not JSON: Error response/);
    expect((loginLines[0] as string).length).toBeLessThan(200);
    expect(loginLines[1]).toContain("may not be a Switchboard API");
  });
});

describe("blank required text", () => {
  it("is bad usage (exit 2) before any request", async () => {
    const before = requests.length;
    for (const args of [
      ["add-task", "", "--role", "executor"],
      ["add-task", "  ", "--role", "executor"],
      ["respond", "q_1", ""],
      ["respond", "exec-alpha", " \n"],
      ["respond", "", "the answer"],
    ]) {
      const run = await runCli(home, args, env());
      expect(run.code, `switchboard ${JSON.stringify(args)}: ${run.stderr}`).toBe(2);
      expect(run.stderr).toMatch(/^error: the (title|answer|question id or worker id) is empty\nhint: /);
    }
    expect(requests.length).toBe(before);
  });
});

describe("switchboard worker --fleet-env (what `start` gives a worker in tmux)", () => {
  it("is the CLI's own option, not Node's --env-file, which Node reads even after the script", async () => {
    const missing = join(home, "no-such-env.json");
    const gone = await runCli(home, ["worker", "--role", "executor", "--fleet-env", missing, "--", "true"], {});
    expect(gone.code, gone.stderr).toBe(2);
    expect(gone.stderr).toMatch(new RegExp(`^error: --fleet-env: cannot read ${missing}: ENOENT`));
    expect(gone.stderr).not.toContain("node:");

    const bad = join(home, "bad-env.json");
    writeFileSync(bad, JSON.stringify({ SWITCHBOARD_URL: 1 }));
    const refused = await runCli(home, ["worker", "--role", "executor", "--fleet-env", bad, "--", "true"], {});
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`--fleet-env: ${bad} is not a JSON object of strings`);

    // The file's variables are the worker's: here the URL and key of the stand-in server,
    // which refuses the claim (a 404 page), so the worker stops with that.
    const file = join(home, "env.json");
    writeFileSync(file, JSON.stringify(env()));
    const before = requests.length;
    const run = await runCli(home, ["worker", "--role", "executor", "--name", "fleet-env-test", "--dir", join(home, "w"), "--fleet-env", file, "--", "true"], {});
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain("claim refused: HTTP 404");
    expect(requests.slice(before).some((r) => r.includes("claim"))).toBe(true);
  });
});

describe("describeProblem", () => {
  it("reads problem+json, and makes anything else one bounded, printable line", () => {
    expect(describeProblem(409, JSON.stringify({ title: "Conflict", detail: "The lease expired." })).message).toBe("Conflict: The lease expired.");
    expect(describeProblem(502, "", "Bad Gateway").message).toBe("HTTP 502 Bad Gateway");
    expect(describeProblem(503, "upstream\nconnect error\u0007", "", "text/plain; charset=utf-8").message).toBe("HTTP 503 (text/plain): upstream connect error^G");
    expect(describeProblem(500, '{"error":"boom"}').message).toBe('HTTP 500: {"error":"boom"}');
    expect(bodyExcerpt("x".repeat(5000), 50)).toBe(`${"x".repeat(49)}…`);
    expect(bodyExcerpt("<html><script>var a = 1 < 2;</script><p>Bad &amp; gone</p>")).toBe("Bad &amp; gone");
  });
});
