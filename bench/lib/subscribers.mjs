// The main thread's side of the subscriber pool: N SSE streams on one topic, spread over a
// few worker threads (bench/lib/subscriber-worker.mjs).
import { Worker } from "node:worker_threads";

function once(worker, type, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`subscriber thread: no "${type}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (msg) => {
      if (msg.type !== type) return;
      cleanup();
      resolve(msg);
    };
    const onError = (e) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      clearTimeout(timer);
      worker.off("message", onMessage);
      worker.off("error", onError);
    };
    worker.on("message", onMessage);
    worker.on("error", onError);
  });
}

/**
 * Opens `count` streams over `threads` worker threads and waits until each got its snapshot
 * (or failed). Returns { ready, collect(accepted, waitMs), terminate() }.
 */
export async function openSubscribers({ url, token, count, threads, eventPrefix, maxEvents, openConcurrency = 50, openTimeoutMs = 90_000, reconnect = false, defaultRetryMs = 2000 }) {
  const workers = [];
  const shares = Array.from({ length: threads }, (_, t) => Math.floor(count / threads) + (t < count % threads ? 1 : 0)).filter((n) => n > 0);
  for (const share of shares) {
    workers.push(new Worker(new URL("./subscriber-worker.mjs", import.meta.url), { workerData: { url, token, count: share, eventPrefix, maxEvents, openConcurrency: Math.max(1, Math.ceil(openConcurrency / shares.length)), openTimeoutMs, reconnect, defaultRetryMs } }));
  }
  const terminate = () => Promise.all(workers.map((w) => w.terminate()));
  let readies;
  try {
    readies = await Promise.all(workers.map((w) => once(w, "ready", openTimeoutMs + 30_000)));
  } catch (e) {
    await terminate();
    throw e;
  }
  const ready = {
    open: readies.reduce((n, r) => n + r.open, 0),
    failed: readies.reduce((n, r) => n + r.failedCount, 0),
    failures: readies.flatMap((r) => r.failed).slice(0, 5),
    open_ms: Math.max(...readies.map((r) => r.openMs)),
  };

  /** Waits (at most waitMs) for every subscriber to hold every accepted event; merges results. */
  async function collect(accepted, waitMs) {
    const deadlineMs = Date.now() + waitMs;
    const pending = workers.map((w) => once(w, "result", waitMs + 30_000));
    for (const w of workers) w.postMessage({ type: "expect", accepted, deadlineMs });
    const results = await Promise.all(pending);
    const merge = (field) => {
      const out = new Float64Array(results.reduce((n, r) => n + r[field].length, 0));
      let off = 0;
      for (const r of results) {
        out.set(r[field], off);
        off += r[field].length;
      }
      return out;
    };
    // Per event, how many subscribers (of all threads) received it.
    const receivedBy = new Uint32Array(accepted.length);
    for (const r of results) for (let i = 0; i < receivedBy.length; i++) receivedBy[i] += r.receivedBy[i];
    return { latencies: merge("latencies"), fanout: merge("fanout"), subs: results.flatMap((r) => r.subs), loops: results.map((r) => r.loop), receivedBy };
  }

  return { ready, collect, terminate };
}
