// A tiny Worker for bench/lib/queue-check.mjs: does wrangler dev's local queue keep its
// messages when wrangler reloads the Worker (as the restart test does to Switchboard)?
// Each message is retried once after a delay, so it sits in the queue; a Durable Object
// (SQLite, persisted on disk) records the messages the consumer finally acks.
import { DurableObject } from "cloudflare:workers";
export class Counter extends DurableObject {
  async add(ids) {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)");
    for (const id of ids) this.ctx.storage.sql.exec("INSERT OR IGNORE INTO seen VALUES (?)", id);
  }
  async count() {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)");
    return this.ctx.storage.sql.exec("SELECT COUNT(*) AS n FROM seen").one().n;
  }
}
export default {
  async fetch(req, env) {
    const url = new URL(req.url);
    const counter = env.COUNTER.get(env.COUNTER.idFromName("c"));
    if (url.pathname === "/send") {
      const n = Number(url.searchParams.get("n") ?? 10);
      const delay = Number(url.searchParams.get("delay") ?? 0);
      const tag = url.searchParams.get("tag") ?? "m";
      for (let i = 0; i < n; i += 100) await env.Q.sendBatch(Array.from({ length: Math.min(100, n - i) }, (_, k) => ({ body: { id: `${tag}${i + k}`, delay } })));
      return Response.json({ sent: n });
    }
    if (url.pathname === "/count") return Response.json({ acked: await counter.count() });
    return new Response("ok");
  },
  async queue(batch, env) {
    const counter = env.COUNTER.get(env.COUNTER.idFromName("c"));
    const done = [];
    for (const m of batch.messages) {
      if (m.attempts === 1 && m.body.delay > 0) m.retry({ delaySeconds: m.body.delay });
      else done.push(m);
    }
    if (done.length) await counter.add(done.map((m) => m.body.id));
    for (const m of done) m.ack();
  },
};
