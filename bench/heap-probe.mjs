#!/usr/bin/env node
// The V8 heap of every isolate in a running `wrangler dev` runtime, before and while it takes
// wrong-key callbacks at 200/s straight to the runtime (refused at the first D1 read): the
// measurement behind README Benchmarks' "where that tail comes from" (every isolate's heap
// stayed under 60 MB; miniflare's D1 entry isolate grew ~2 KB a request).
// Run against a Worker started by hand (e.g. `PORT=8796 npm start`): find the runtime (the
// workerd started with --inspector-addr), list its ports with `ss -ltnp | grep <its pid>`;
// the inspector's answers `/json/list` with the isolates, the runtime's own answers the API.
//   npx node bench/heap-probe.mjs 127.0.0.1:<inspector port> 127.0.0.1:<runtime port> [seconds]
// By hand, not in CI or `npm run bench`.
import http from "node:http";
const [inspector, direct, seconds] = [process.argv[2], process.argv[3], Number(process.argv[4] ?? 30)];
const targets = await (await fetch(`http://${inspector}/json/list`)).json();
const socks = {};
for (const t of targets) {
  const ws = new WebSocket(t.webSocketDebuggerUrl);
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
  let id = 0; const pending = new Map();
  ws.onmessage = (m) => { const d = JSON.parse(m.data); if (pending.has(d.id)) { pending.get(d.id)(d.result); pending.delete(d.id); } };
  socks[t.id] = (method) => new Promise((r) => { const i = ++id; pending.set(i, r); ws.send(JSON.stringify({ id: i, method })); setTimeout(() => r(null), 2000); });
}
const snap = async () => {
  const out = [];
  for (const [k, call] of Object.entries(socks)) { const u = await call("Runtime.getHeapUsage"); if (u) out.push([k, (u.usedSize / 1e6).toFixed(1), (u.totalSize / 1e6).toFixed(1)]); }
  return out.map((x) => x.join(":")).join("  ");
};
console.log("t=0", await snap());
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const body = JSON.stringify({ id: "e", type: "usage.reported", session_id: "s", topic_id: "t", data: { step: "explore", tools: [] } });
const start = Date.now(); let n = 0;
const timer = setInterval(() => {
  const req = http.request(`http://${direct}/v1/callbacks`, { method: "POST", agent, headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), Authorization: "Bearer sb_wrong" } }, (res) => res.resume());
  req.on("error", () => {}); req.end(body); n++;
}, 5);
for (let s = 5; s <= seconds; s += 5) { await new Promise((r) => setTimeout(r, 5000)); console.log(`t=${s} n=${n}`, await snap()); }
clearInterval(timer);
process.exit(0);
