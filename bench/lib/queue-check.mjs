// What a wrangler dev reload does to the local queue, shown on a tiny Worker
// (bench/queue-reload/worker.js) rather than asserted: N messages that each wait a few
// seconds in the queue (retried once with a delay), then the same config touch the restart
// test uses on Switchboard. A control batch without a reload comes first. The Durable
// Object's count (SQLite on disk) tells what the consumer acked, and that DO state survives.
import { mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, startWorker } from "./wrangler.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function queueReloadCheck({ root, work, host, log, messages = 200, delayS = 3 }) {
  const dir = join(work, "queue-check");
  mkdirSync(dir, { recursive: true });
  const config = join(dir, "wrangler.toml");
  writeFileSync(
    config,
    `name = "queue-reload-check"
main = "${join(root, "bench", "queue-reload", "worker.js")}"
compatibility_date = "2026-10-20"
[[queues.producers]]
binding = "Q"
queue = "reload-check"
[[queues.consumers]]
queue = "reload-check"
max_batch_timeout = 0
max_batch_size = 100
max_retries = 5
[[durable_objects.bindings]]
name = "COUNTER"
class_name = "Counter"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["Counter"]
`,
  );
  const worker = await startWorker({ root, host, port: await freePort(host, 0), inspectorPort: await freePort(host, 0), persistDir: join(dir, "state"), logFile: join(dir, "wrangler.log"), config, vars: {} });
  try {
    const get = async (path) => (await fetch(`${worker.base}${path}`, { signal: AbortSignal.timeout(30_000) })).json();
    const waitMs = (delayS + 3) * 1000;
    await get(`/send?n=${messages}&delay=${delayS}&tag=control-`);
    await sleep(waitMs);
    const control = (await get("/count")).acked;
    await get(`/send?n=${messages}&delay=${delayS}&tag=reload-`);
    const t = new Date();
    utimesSync(config, t, t);
    await sleep(waitMs + 4000);
    const afterReload = (await get("/count")).acked;
    const result = {
      messages_per_batch: messages,
      delay_s: delayS,
      control_acked: control,
      acked_after_reload: afterReload - control,
      do_state_kept: afterReload >= control,
      queue_kept_messages: afterReload - control === messages,
    };
    log(`  queue check: control ${control}/${messages} acked; with a reload while they waited ${result.acked_after_reload}/${messages}; the DO's count ${result.do_state_kept ? "survived" : "did not survive"} the reload`);
    return result;
  } finally {
    await worker.stop();
    rmSync(join(dir, "state"), { recursive: true, force: true });
  }
}
