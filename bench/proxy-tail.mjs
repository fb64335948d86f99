#!/usr/bin/env node
// What wrangler dev's proxy adds to requests paced at 200/s: a GET of an unknown path (a 404
// from the Worker) and a callback POST, each through the public port and straight to the
// runtime's own port, twice, 10 s each; prints p50/p90/p99/max of send → answer.
// Run: `npx node bench/proxy-tail.mjs` (starts its own wrangler dev on 127.0.0.1, as the bench
// does: LOG_LEVEL=warn, no local trace store). Not part of `npm run bench`; README, Benchmarks.
// PROXY_TAIL_CASES picks the cases (get404, post404, post401, callback; default get404,callback),
// PROXY_TAIL_STALLS=1 prints when each answer over 50 ms was sent (a cluster is one pause),
// PROXY_TAIL_IDLE_S waits before the first case.
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expectJson } from "./lib/http.mjs";
import { startSwitchboard } from "./lib/systems.mjs";

const root = new URL("..", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "switchboard-proxy-tail-"));
const log = (msg) => console.log(msg);
const system = await startSwitchboard({ root, work, host: "127.0.0.1", port: 0, logLevel: "warn", log });
try {
  const base = system.base;
  const direct = await system.directBase();
  if (!direct) throw new Error("the runtime's own port was not found");
  const team = await expectJson(base, "POST", "/v1/admin/teams", 201, { token: system.adminToken, body: JSON.stringify({ name: "proxy tail" }) });
  const key = team.api_key;
  await expectJson(base, "POST", "/v1/sessions", 201, { token: key, body: JSON.stringify({ id: "s" }) });
  await expectJson(base, "POST", "/v1/sessions/s/topics", 201, { token: key, body: JSON.stringify({ id: "t" }) });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  // PROXY_TAIL_IDLE_S: seconds to wait before the first case (is a pause tied to uptime or to load?).
  await new Promise((r) => setTimeout(r, Number(process.env.PROXY_TAIL_IDLE_S ?? 0) * 1000));
  let n = 0;
  const callback = () => JSON.stringify({ id: `e${n++}`, type: "usage.reported", session_id: "s", topic_id: "t", data: { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }] } });
  const send = (url, method, body, auth = key) =>
    new Promise((resolve, reject) => {
      const t = performance.now();
      const headers = body ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), Authorization: `Bearer ${auth}` } : {};
      const req = http.request(url, { method, headers, agent }, (res) => {
        res.resume();
        res.on("end", () => resolve({ ms: performance.now() - t, status: res.statusCode }));
      });
      req.on("error", reject);
      req.end(body);
    });
  const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1);
  // PROXY_TAIL_CASES (comma-separated names, default "get404,callback") picks the cases:
  // post404 (a callback's body to an unknown path: the proxy forwards a body, the Worker does
  // no work) and post401 (a callback with a wrong key: refused before any work) tell whether a
  // tail comes from forwarding a body or from the work a callback starts.
  const cases = {
    get404: ["GET unknown path", "GET", "/nope", () => undefined],
    post404: ["POST unknown path", "POST", "/nope", callback],
    post401: ["POST callback, wrong key", "POST", "/v1/callbacks", callback, "sb_wrong"],
    callback: ["POST callback", "POST", "/v1/callbacks", callback],
  };
  const chosen = (process.env.PROXY_TAIL_CASES ?? "get404,callback").split(",").map((n) => {
    if (!cases[n.trim()]) throw new Error(`PROXY_TAIL_CASES: no case ${n} (${Object.keys(cases).join(", ")})`);
    return cases[n.trim()];
  });
  for (const [what, method, path, body, wrongKey] of chosen) {
    const auth = wrongKey ?? key;
    for (const [via, origin] of [["proxy", base], ["straight", direct], ["proxy", base], ["straight", direct]]) {
      const answers = [];
      const start = performance.now();
      const inflight = [];
      for (let i = 0; i < 2000; i++) {
        const wait = start + i * 5 - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const sentAt = performance.now() - start;
        inflight.push(send(`${origin}${path}`, method, body(), auth).then((a) => answers.push({ ...a, sentAt })));
      }
      await Promise.all(inflight);
      const ms = answers.map((a) => a.ms).sort((x, y) => x - y);
      const statuses = {};
      for (const a of answers) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
      console.log(`${what}, ${via}, 200/s for 10 s: p50 ${pct(ms, 0.5)} p90 ${pct(ms, 0.9)} p99 ${pct(ms, 0.99)} max ${pct(ms, 1)} ms; statuses ${JSON.stringify(statuses)}`);
      if (process.env.PROXY_TAIL_STALLS) {
        // When the slow answers (> 50 ms) were sent, s into the run: one cluster is one pause.
        const slow = answers.filter((a) => a.ms > 50).sort((x, y) => x.sentAt - y.sentAt);
        console.log(`  slow: ${slow.map((a) => `${(a.sentAt / 1000).toFixed(2)}s:${a.ms.toFixed(0)}`).join(" ")}`);
      }
    }
  }
} finally {
  await system.stop();
  rmSync(work, { recursive: true, force: true });
}
