// The task queue's two measured scenarios (issue 4), on one role of one team each:
//   T. claim throughput: N tasks created first, then W workers loop claim → complete until
//      the queue answers 204; every claimed id is recorded with its worker, and the server's
//      view is checked at the end (every task completed, exactly one attempt, by that worker);
//   L. created → claimed latency: W workers poll claim (a short sleep after each 204) while a
//      producer creates tasks at a steady rate; latency is the claim's answer minus the
//      create's send, on this process's clock.
import { agent, expectJson, request } from "./http.mjs";
import { nowMs } from "./sse-client.mjs";
import { summarize } from "./stats.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round1 = (x) => Math.round(x * 10) / 10;
const perS = (n, ms) => (ms > 0 ? round1(n / (ms / 1000)) : null);
const count = (map, k) => (map[k] = (map[k] ?? 0) + 1);

/** A create body; the title carries the run and the sequence number, so a claim names its create. */
const taskBody = (role, tag, seq) => JSON.stringify({ title: `${tag} ${seq}`, role, description: "claims benchmark" });
const seqOf = (title, tag) => (title?.startsWith(`${tag} `) ? Number(title.slice(tag.length + 1)) : NaN);

/** A fresh team and an `agent` key for it (the team's first key is an operator key). */
export async function claimsTeam(base, adminToken, name) {
  const team = await expectJson(base, "POST", "/v1/admin/teams", 201, { token: adminToken, body: JSON.stringify({ name }) });
  const agentKey = await expectJson(base, "POST", "/v1/keys", 201, { token: team.api_key, body: JSON.stringify({ name: "claims bench worker", scopes: ["agent"] }) });
  return { teamId: team.team_id, key: agentKey.key };
}

/** Every task of the role in `status`, all pages (200 a page, the most the API serves). */
export async function listTasks(base, key, role, status) {
  const out = [];
  let cursor = null;
  for (let pages = 0; pages < 10_000; pages++) {
    const q = new URLSearchParams({ status, role, limit: "200", ...(cursor ? { cursor } : {}) });
    const page = await expectJson(base, "GET", `/v1/tasks?${q}`, 200, { token: key });
    out.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

/** One claim; resolves { status, task?, ms } or { error, ms }. */
async function claim(base, key, via, workerId, role) {
  const s = performance.now();
  try {
    const res = await request(base, "POST", "/v1/tasks/claim", { token: key, agent: via, body: JSON.stringify({ worker_id: workerId, role }), timeoutMs: 30_000 });
    const ms = performance.now() - s;
    return { status: res.status, task: res.status === 200 ? res.json() : null, text: res.status === 200 || res.status === 204 ? "" : res.text, ms, at: nowMs() };
  } catch (e) {
    return { error: e.message, ms: performance.now() - s, at: nowMs() };
  }
}

async function complete(base, key, via, task) {
  const s = performance.now();
  try {
    const res = await request(base, "POST", `/v1/tasks/${task.id}/complete`, { token: key, agent: via, body: JSON.stringify({ lease_id: task.lease.id, result: "done", cost_usd: 0 }), timeoutMs: 30_000 });
    return { status: res.status, text: res.status === 200 ? "" : res.text, ms: performance.now() - s };
  } catch (e) {
    return { error: e.message, ms: performance.now() - s };
  }
}

/** Claims recorded by the client: [{ id, worker }] → what was claimed twice, never, or unknown. */
function claimBook(created, claims) {
  const byId = new Map();
  for (const c of claims) byId.set(c.id, [...(byId.get(c.id) ?? []), c.worker]);
  const doubles = [...byId].filter(([, ws]) => ws.length > 1).map(([id, ws]) => ({ id, workers: ws }));
  const createdSet = new Set(created);
  return {
    claims: claims.length,
    distinct_tasks_claimed: byId.size,
    double_claims: doubles.length,
    double_claim_examples: doubles.slice(0, 5),
    never_claimed: created.filter((id) => !byId.has(id)).length,
    claimed_not_created: [...byId.keys()].filter((id) => !createdSet.has(id)).length,
    workerOf: byId,
  };
}

/** The server's view at the end: every created task completed once, by the worker the client saw. */
async function verify(base, key, role, created, workerOf) {
  const completed = await listTasks(base, key, role, "completed");
  const ids = new Set(completed.map((t) => t.id));
  const createdSet = new Set(created);
  const left = {};
  for (const status of ["pending", "claimed", "running", "failed"]) {
    const n = (await listTasks(base, key, role, status)).length;
    if (n) left[status] = n;
  }
  const attempts = {};
  for (const t of completed) count(attempts, t.attempts);
  const report = {
    completed_listed: completed.length,
    completed_distinct: ids.size,
    created_and_completed: created.filter((id) => ids.has(id)).length,
    completed_not_created: [...ids].filter((id) => !createdSet.has(id)).length,
    attempts,
    worker_mismatch: completed.filter((t) => workerOf.get(t.id)?.length !== 1 || workerOf.get(t.id)[0] !== t.worker_id).length,
    not_completed_by_status: left,
  };
  report.every_task_completed_exactly_once =
    report.completed_listed === created.length && report.completed_distinct === created.length && report.created_and_completed === created.length && Object.keys(attempts).join() === "1" && report.worker_mismatch === 0 && Object.keys(left).length === 0;
  return report;
}

/** POST /v1/tasks `n` times, `concurrency` at a time; returns the ids in creation order and the stats. */
async function createTasks({ base, key, role, tag, n, concurrency }) {
  const via = agent(concurrency);
  const ids = new Array(n);
  const latencies = [];
  const statuses = {};
  const firstErrors = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const seq = next++;
        const s = performance.now();
        try {
          const res = await request(base, "POST", "/v1/tasks", { token: key, agent: via, body: taskBody(role, tag, seq), timeoutMs: 30_000 });
          latencies.push(performance.now() - s);
          count(statuses, res.status);
          if (res.status === 201) ids[seq] = res.json().id;
          else if (firstErrors.length < 3) firstErrors.push(`${res.status} ${res.text.slice(0, 200)}`);
        } catch (e) {
          count(statuses, "network error");
          if (firstErrors.length < 3) firstErrors.push(e.message);
        }
      }
    }),
  );
  const ms = performance.now() - t0;
  via.destroy();
  const created = ids.filter(Boolean);
  return { created, stats: { requested: n, created: created.length, concurrency, ms: Math.round(ms), created_per_s: perS(created.length, ms), statuses, first_errors: firstErrors, request_latency_ms: summarize(latencies) } };
}

/**
 * Scenario T. `tasks` created (`createConcurrency` at a time), then `workers` loops of claim →
 * complete, each until its claim answers 204. claims/s counts successful claims over the time
 * from the start to the last 200 claim; cycles/s counts completions up to the last completion.
 */
export async function claimThroughput({ base, key, role, tag, tasks = 5000, workers = 16, createConcurrency = 16, log, phase = () => {} }) {
  phase("T: creating tasks");
  log(`  creating ${tasks} tasks of role ${role}, ${createConcurrency} at a time`);
  const { created, stats: create } = await createTasks({ base, key, role, tag, n: tasks, concurrency: createConcurrency });
  log(`  created ${create.created} in ${(create.ms / 1000).toFixed(1)} s (${create.created_per_s}/s), statuses ${JSON.stringify(create.statuses)}`);
  if (create.created !== tasks) throw new Error(`only ${create.created} of ${tasks} tasks were created: ${create.first_errors.join("; ")}`);

  phase("T: claim → complete");
  const via = agent(workers);
  const claims = [];
  const claimMs = [];
  const emptyClaimMs = [];
  const completeMs = [];
  const claimStatuses = {};
  const completeStatuses = {};
  const firstErrors = [];
  let lastClaimAt = 0;
  let lastCompleteAt = 0;
  let completed = 0;
  const limit = tasks * 2 + workers * 100; // a safety net against a loop that never hears 204
  let requests = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const worker = `${tag}-w${String(w + 1).padStart(2, "0")}`;
      while (requests++ < limit) {
        const c = await claim(base, key, via, worker, role);
        count(claimStatuses, c.error ? "network error" : c.status);
        if (c.status === 204) {
          emptyClaimMs.push(c.ms);
          return;
        }
        if (c.status !== 200) {
          if (firstErrors.length < 5) firstErrors.push(`claim: ${c.error ?? `${c.status} ${c.text.slice(0, 200)}`}`);
          await sleep(c.status === 429 ? 100 : 10);
          continue;
        }
        lastClaimAt = performance.now();
        claimMs.push(c.ms);
        claims.push({ id: c.task.id, worker });
        const d = await complete(base, key, via, c.task);
        count(completeStatuses, d.error ? "network error" : d.status);
        completeMs.push(d.ms);
        if (d.status === 200) {
          completed++;
          lastCompleteAt = performance.now();
        } else if (firstErrors.length < 5) firstErrors.push(`complete ${c.task.id}: ${d.error ?? `${d.status} ${d.text.slice(0, 200)}`}`);
      }
    }),
  );
  const allDoneMs = performance.now() - t0;
  via.destroy();
  const claimWindow = lastClaimAt - t0;
  const cycleWindow = lastCompleteAt - t0;
  const book = claimBook(created, claims);
  log(`  ${claims.length} claims in ${(claimWindow / 1000).toFixed(1)} s (${perS(claims.length, claimWindow)}/s), ${completed} completed (${perS(completed, cycleWindow)} cycles/s); claim p50 ${summarize(claimMs).p50} ms, p99 ${summarize(claimMs).p99} ms`);
  phase("T: verifying");
  const server = await verify(base, key, role, created, book.workerOf);
  const { workerOf, ...clientView } = book;
  const zeroDouble = clientView.double_claims === 0 && clientView.never_claimed === 0 && clientView.claimed_not_created === 0 && clientView.distinct_tasks_claimed === tasks && server.every_task_completed_exactly_once;
  log(`  double claims ${clientView.double_claims}, never claimed ${clientView.never_claimed}; server: ${server.completed_distinct} completed, attempts ${JSON.stringify(server.attempts)}, left ${JSON.stringify(server.not_completed_by_status)} → ${zeroDouble ? "every task claimed exactly once" : "**NOT** every task claimed exactly once"}`);
  return {
    tasks,
    workers,
    role,
    create,
    claimed: claims.length,
    completed,
    claim_window_ms: Math.round(claimWindow),
    cycle_window_ms: Math.round(cycleWindow),
    all_workers_done_ms: Math.round(allDoneMs),
    claims_per_s: perS(claims.length, claimWindow),
    cycles_per_s: perS(completed, cycleWindow),
    claim_latency_ms: summarize(claimMs),
    empty_claim_latency_ms: summarize(emptyClaimMs),
    complete_latency_ms: summarize(completeMs),
    claim_statuses: claimStatuses,
    complete_statuses: completeStatuses,
    first_errors: firstErrors,
    client: clientView,
    server,
    zero_double_claims: zeroDouble,
  };
}

/**
 * Scenario L. `workers` loops poll claim (sleeping `pollMs` after each 204, completing each
 * task they get) while a producer creates `ratePerS` tasks a second for `durationMs`, each
 * create sent on schedule without waiting for the one before. Latency: the claim's answer
 * minus the create's send time (this process's clock); the server's own created_at →
 * claimed_at is recorded beside it. Waits up to `collectWaitMs` after the last create for
 * the workers to claim every created task.
 */
export async function claimLatency({ base, key, role, tag, workers = 16, ratePerS = 50, durationMs = 20_000, pollMs = 10, collectWaitMs = 30_000, log, phase = () => {} }) {
  const total = Math.round((ratePerS * durationMs) / 1000);
  const sentAt = new Float64Array(total).fill(NaN);
  const createdIds = [];
  const createStatuses = {};
  const createMs = [];
  const firstErrors = [];
  const latency = [];
  const serverLatency = [];
  const claimMs = [];
  const emptyClaimMs = [];
  const claimStatuses = {};
  const completeStatuses = {};
  const claims = [];
  let unknownClaims = 0;
  let stop = false;
  let producerDone = false;

  phase(`L: ${ratePerS} creates/s, ${workers} workers polling`);
  const via = agent(workers);
  const workerLoops = Array.from({ length: workers }, async (_, w) => {
    const worker = `${tag}-w${String(w + 1).padStart(2, "0")}`;
    while (!stop) {
      const c = await claim(base, key, via, worker, role);
      count(claimStatuses, c.error ? "network error" : c.status);
      if (c.status === 204) {
        emptyClaimMs.push(c.ms);
        await sleep(pollMs);
        continue;
      }
      if (c.status !== 200) {
        if (firstErrors.length < 5) firstErrors.push(`claim: ${c.error ?? `${c.status} ${c.text.slice(0, 200)}`}`);
        await sleep(c.status === 429 ? 100 : pollMs);
        continue;
      }
      claimMs.push(c.ms);
      claims.push({ id: c.task.id, worker });
      const seq = seqOf(c.task.title, tag);
      if (Number.isFinite(seq) && Number.isFinite(sentAt[seq])) latency.push(c.at - sentAt[seq]);
      else unknownClaims++;
      serverLatency.push(Date.parse(c.task.claimed_at) - Date.parse(c.task.created_at));
      const d = await complete(base, key, via, c.task);
      count(completeStatuses, d.error ? "network error" : d.status);
      if (d.status !== 200 && firstErrors.length < 5) firstErrors.push(`complete ${c.task.id}: ${d.error ?? `${d.status} ${d.text.slice(0, 200)}`}`);
    }
  });

  // The producer: create i at start + i / rate, not waiting for the answers (a slow answer must not delay the next create).
  const produce = agent(64);
  const inflight = new Set();
  let behindMax = 0;
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / ratePerS;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    else behindMax = Math.max(behindMax, -wait);
    sentAt[i] = nowMs();
    const s = performance.now();
    const p = request(base, "POST", "/v1/tasks", { token: key, agent: produce, body: taskBody(role, tag, i), timeoutMs: 30_000 })
      .then((res) => {
        createMs.push(performance.now() - s);
        count(createStatuses, res.status);
        if (res.status === 201) createdIds.push(res.json().id);
        else if (firstErrors.length < 5) firstErrors.push(`create: ${res.status} ${res.text.slice(0, 200)}`);
      })
      .catch((e) => {
        count(createStatuses, "network error");
        if (firstErrors.length < 5) firstErrors.push(`create: ${e.message}`);
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
  const produceMs = performance.now() - start;
  producerDone = true;
  produce.destroy();

  phase("L: collecting the last claims");
  const waitStart = performance.now();
  while (claims.length < createdIds.length && performance.now() - waitStart < collectWaitMs) await sleep(20);
  const waited = performance.now() - waitStart;
  stop = true;
  await Promise.all(workerLoops);
  via.destroy();

  const book = claimBook(createdIds, claims);
  const { workerOf, ...clientView } = book;
  const result = {
    workers,
    role,
    rate_target_per_s: ratePerS,
    duration_ms: durationMs,
    poll_sleep_ms: pollMs,
    sent: total,
    created: createdIds.length,
    rate_achieved_per_s: perS(total, produceMs),
    producer_max_behind_schedule_ms: Math.round(behindMax),
    create_statuses: createStatuses,
    create_latency_ms: summarize(createMs),
    collect_waited_ms: Math.round(waited),
    claimed: claims.length,
    claims_without_a_known_send: unknownClaims,
    latency_ms: summarize(latency),
    server_created_to_claimed_ms: summarize(serverLatency),
    claim_latency_ms: summarize(claimMs),
    empty_claim_latency_ms: summarize(emptyClaimMs),
    claim_statuses: claimStatuses,
    complete_statuses: completeStatuses,
    first_errors: firstErrors,
    client: clientView,
    zero_double_claims: producerDone && clientView.double_claims === 0 && clientView.never_claimed === 0 && clientView.claimed_not_created === 0,
  };
  log(
    `  created ${result.created} of ${total} at ${result.rate_achieved_per_s}/s, claimed ${result.claimed} (${JSON.stringify(claimStatuses)}); created → claimed p50 ${result.latency_ms.p50} ms, p99 ${result.latency_ms.p99} ms (server's created_at → claimed_at p50 ${result.server_created_to_claimed_ms.p50} ms); double claims ${clientView.double_claims}, never claimed ${clientView.never_claimed}`,
  );
  return result;
}
