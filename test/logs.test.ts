import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import type { AppendedLogsResponse, AppendLogs, LogLinesResponse } from "../src/routes/logs";
import { call, createKey, createTeam, errorPaths, expectProblem } from "./helpers";
import { createTask } from "./task-helpers";
import { isoDaysAgo, workerHeartbeat } from "./worker-helpers";

const runCron = () => worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, createExecutionContext());
const postLogs = (key: string, wid: string, body: unknown) => call(`/v1/workers/${wid}/logs`, { method: "POST", key, json: body });

async function append(key: string, wid: string, body: AppendLogs): Promise<AppendedLogsResponse> {
  const res = await postLogs(key, wid, body);
  const text = await res.text();
  expect(res.status, text).toBe(202);
  return JSON.parse(text) as AppendedLogsResponse;
}

async function read(key: string, path: string): Promise<LogLinesResponse> {
  const res = await call(path, { key });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as LogLinesResponse;
}

const texts = (r: LogLinesResponse) => r.lines.map((l) => l.text);

/** What the team has stored: its R2 objects (with their text) and its index rows. */
async function stored(teamId: string) {
  const listed = await env.BUCKET.list({ prefix: `logs/${teamId}/` });
  const objects: Record<string, string> = {};
  for (const o of listed.objects) objects[o.key] = (await (await env.BUCKET.get(o.key))?.text()) ?? "";
  const rows = await env.DB.prepare("SELECT * FROM log_batches WHERE team_id = ? ORDER BY seq").bind(teamId).all<{
    team_id: string;
    seq: number;
    id: string;
    worker_id: string;
    task_id: string | null;
    r2_key: string;
    line_count: number;
    bytes: number;
    created_at: string;
  }>();
  return { objects, rows: rows.results };
}

/** A team with an agent key (which writes) and a read key. */
async function team() {
  const t = await createTeam();
  return { team: t, agent: await createKey(t.api_key, ["agent"]), reader: await createKey(t.api_key, ["read"]) };
}

describe("logs: append and read the tail", () => {
  it("stores one R2 object and one index row per batch, and reads the last N lines across batches", async () => {
    const { team: t, agent, reader } = await team();
    const before = new Date().toISOString();
    const a = await append(agent, "w1", { lines: ["a1", "a2", "a3"] });
    const b = await append(agent, "w1", { lines: ["b1", "b2", "b3", "b4"] });
    const c = await append(agent, "w1", { lines: ["c1", "c2"] });
    expect(a).toEqual({ batch_id: expect.stringMatching(/^logb_[0-9a-f]+$/), lines: 3, cursor: expect.any(String) });
    expect(b.lines).toBe(4);
    expect(new Set([a.batch_id, b.batch_id, c.batch_id]).size).toBe(3);
    expect(new Set([a.cursor, b.cursor, c.cursor]).size).toBe(3);

    // One object per batch under the team's prefix, and one index row each.
    const { objects, rows } = await stored(t.team_id);
    expect(rows.map((r) => [r.id, r.worker_id, r.task_id, r.line_count])).toEqual([
      [a.batch_id, "w1", null, 3],
      [b.batch_id, "w1", null, 4],
      [c.batch_id, "w1", null, 2],
    ]);
    expect(rows[0]!.seq < rows[1]!.seq && rows[1]!.seq < rows[2]!.seq).toBe(true);
    expect(Object.keys(objects).sort()).toEqual(rows.map((r) => r.r2_key).sort());
    for (const r of rows) {
      expect(r.r2_key).toBe(`logs/${t.team_id}/w1/${r.id}.jsonl`);
      expect(r.bytes).toBe(new TextEncoder().encode(objects[r.r2_key]).byteLength);
      expect(r.created_at >= before).toBe(true);
    }
    expect(objects[rows[1]!.r2_key]!.trimEnd().split("\n").map((l) => JSON.parse(l))).toEqual(
      ["b1", "b2", "b3", "b4"].map((text) => ({ at: rows[1]!.created_at, worker_id: "w1", task_id: null, text })),
    );

    const path = "/v1/workers/w1/logs";
    const all = await read(reader, path);
    expect(texts(all)).toEqual(["a1", "a2", "a3", "b1", "b2", "b3", "b4", "c1", "c2"]);
    expect(all.lines[0]).toEqual({ at: rows[0]!.created_at, worker_id: "w1", task_id: null, text: "a1" });
    expect(all.lines[8]).toEqual({ at: rows[2]!.created_at, worker_id: "w1", task_id: null, text: "c2" });
    // The tail's cursor is the end of the log: the same as the last append's.
    expect(all.cursor).toBe(c.cursor);

    expect(texts(await read(reader, `${path}?lines=1`))).toEqual(["c2"]);
    expect(texts(await read(reader, `${path}?lines=2`))).toEqual(["c1", "c2"]);
    expect(texts(await read(reader, `${path}?lines=3`))).toEqual(["b4", "c1", "c2"]);
    expect(texts(await read(reader, `${path}?lines=5`))).toEqual(["b2", "b3", "b4", "c1", "c2"]);
    expect(texts(await read(reader, `${path}?lines=7`))).toEqual(["a3", "b1", "b2", "b3", "b4", "c1", "c2"]);
    expect(texts(await read(reader, `${path}?lines=5000`))).toEqual(texts(all));
    for (const n of [1, 5, 5000]) expect((await read(reader, `${path}?lines=${n}`)).cursor).toBe(c.cursor);
  });

  it("keeps the default of 100 lines, and lines as sent: empty, multi-byte, up to exactly 8 KiB, 1,000 a batch", async () => {
    const { agent, reader } = await team();
    const odd = ["", "  indented", "tab\there", "é€😀", "line\nwith a newline", '{"json":true}', "é".repeat(4096)];
    await append(agent, "w1", { lines: odd });
    await append(agent, "w1", { lines: Array.from({ length: 1000 }, (_, i) => `n${i}`) });
    const tail = await read(reader, "/v1/workers/w1/logs");
    expect(texts(tail)).toEqual(Array.from({ length: 100 }, (_, i) => `n${900 + i}`));
    expect(texts(await read(reader, "/v1/workers/w1/logs?lines=1007"))).toEqual([...odd, ...Array.from({ length: 1000 }, (_, i) => `n${i}`)]);
  });

  it("concurrent batches each keep their lines together, and every one is in the tail", async () => {
    const { agent, reader } = await team();
    const sent = await Promise.all(Array.from({ length: 12 }, (_, i) => append(agent, "w1", { lines: [`${i}.1`, `${i}.2`, `${i}.3`] })));
    expect(new Set(sent.map((s) => s.cursor)).size).toBe(12);
    const tail = texts(await read(reader, "/v1/workers/w1/logs?lines=1000"));
    expect(tail).toHaveLength(36);
    for (let i = 0; i < 36; i += 3) {
      const batch = tail[i]!.split(".")[0];
      expect(tail.slice(i, i + 3)).toEqual([`${batch}.1`, `${batch}.2`, `${batch}.3`]);
    }
    expect(new Set(tail).size).toBe(36);
  });

  it("filters by task: a task's log gathers every worker's lines about it; a worker's can be narrowed to one task", async () => {
    const { team: t, agent, reader } = await team();
    const t1 = await createTask(agent, { title: "one" });
    const t2 = await createTask(agent, { title: "two" });
    const t3 = await createTask(agent, { title: "silent" });
    await append(agent, "w1", { task_id: t1.id, lines: ["w1 on t1 #1"] });
    await append(agent, "w1", { lines: ["w1 idle"] });
    await append(agent, "w2", { task_id: t1.id, lines: ["w2 on t1"] });
    await append(agent, "w1", { task_id: t2.id, lines: ["w1 on t2"] });
    await append(agent, "w1", { task_id: t1.id, lines: ["w1 on t1 #2", "w1 on t1 #3"] });

    const task1 = await read(reader, `/v1/tasks/${t1.id}/logs`);
    expect(task1.lines.map((l) => [l.worker_id, l.task_id, l.text])).toEqual([
      ["w1", t1.id, "w1 on t1 #1"],
      ["w2", t1.id, "w2 on t1"],
      ["w1", t1.id, "w1 on t1 #2"],
      ["w1", t1.id, "w1 on t1 #3"],
    ]);
    expect(texts(await read(reader, `/v1/tasks/${t1.id}/logs?lines=2`))).toEqual(["w1 on t1 #2", "w1 on t1 #3"]);
    expect(texts(await read(reader, `/v1/tasks/${t2.id}/logs`))).toEqual(["w1 on t2"]);
    expect(texts(await read(reader, `/v1/workers/w1/logs?task_id=${t1.id}`))).toEqual(["w1 on t1 #1", "w1 on t1 #2", "w1 on t1 #3"]);
    expect(texts(await read(reader, `/v1/workers/w2/logs?task_id=${t1.id}`))).toEqual(["w2 on t1"]);
    expect(texts(await read(reader, `/v1/workers/w1/logs`))).toEqual(["w1 on t1 #1", "w1 idle", "w1 on t2", "w1 on t1 #2", "w1 on t1 #3"]);
    // A task of the team without logs, and a worker without lines about a task: empty, not 404.
    expect((await read(reader, `/v1/tasks/${t3.id}/logs`)).lines).toEqual([]);
    expect((await read(reader, `/v1/workers/w2/logs?task_id=${t2.id}`)).lines).toEqual([]);
    // Unknown tasks are 404, as a filter too.
    await expectProblem(await call("/v1/tasks/task_nope/logs", { key: reader }), 404);
    await expectProblem(await call("/v1/workers/w1/logs?task_id=task_nope", { key: reader }), 404);
    expect((await stored(t.team_id)).rows).toHaveLength(5);
  });
});

describe("logs: following with a cursor", () => {
  it("after=<cursor> returns only the lines written since, oldest first, up to N; the cursor is stable", async () => {
    const { agent, reader } = await team();
    const path = "/v1/workers/w1/logs";
    await append(agent, "w1", { lines: ["a1", "a2", "a3"] });
    const start = await read(reader, path);
    expect(texts(start)).toEqual(["a1", "a2", "a3"]);

    // Nothing new: no lines, and the same cursor back, however often.
    for (let i = 0; i < 2; i++) expect(await read(reader, `${path}?after=${start.cursor}`)).toEqual({ lines: [], cursor: start.cursor });

    const b = await append(agent, "w1", { lines: ["b1", "b2"] });
    await append(agent, "w1", { lines: ["c1", "c2", "c3"] });
    const p1 = await read(reader, `${path}?after=${start.cursor}&lines=4`);
    expect(texts(p1)).toEqual(["b1", "b2", "c1", "c2"]);
    const p2 = await read(reader, `${path}?after=${p1.cursor}&lines=4`);
    expect(texts(p2)).toEqual(["c3"]);
    expect(await read(reader, `${path}?after=${p2.cursor}`)).toEqual({ lines: [], cursor: p2.cursor });
    // Reading the same cursor again gives the same answer.
    expect(await read(reader, `${path}?after=${p1.cursor}&lines=4`)).toEqual(p2);
    // The cursor an append answers with reads what came after that batch.
    expect(texts(await read(reader, `${path}?after=${b.cursor}`))).toEqual(["c1", "c2", "c3"]);
    // Default N applies after a cursor too (oldest first: the first 100 new lines).
    await append(agent, "w1", { lines: Array.from({ length: 150 }, (_, i) => `d${i}`) });
    const p3 = await read(reader, `${path}?after=${p2.cursor}`);
    expect(texts(p3)).toEqual(Array.from({ length: 100 }, (_, i) => `d${i}`));
    expect(texts(await read(reader, `${path}?after=${p3.cursor}`))).toEqual(Array.from({ length: 50 }, (_, i) => `d${100 + i}`));
  });

  it("follows a worker and a task that have no lines yet: the empty answer's cursor reads every later line", async () => {
    const { agent, reader } = await team();
    await workerHeartbeat(agent, "w1", { role: "executor", status: "idle" });
    const task = await createTask(agent);
    const worker0 = await read(reader, "/v1/workers/w1/logs");
    const task0 = await read(reader, `/v1/tasks/${task.id}/logs`);
    expect(worker0.lines).toEqual([]);
    expect(task0.lines).toEqual([]);
    // Lines of another worker, and lines about no task, are not in these views.
    await append(agent, "w2", { task_id: task.id, lines: ["w2 on it"] });
    await append(agent, "w1", { lines: ["w1 idle"] });
    await append(agent, "w1", { task_id: task.id, lines: ["w1 on it"] });
    expect(texts(await read(reader, `/v1/workers/w1/logs?after=${worker0.cursor}`))).toEqual(["w1 idle", "w1 on it"]);
    const t1 = await read(reader, `/v1/tasks/${task.id}/logs?after=${task0.cursor}`);
    expect(texts(t1)).toEqual(["w2 on it", "w1 on it"]);
    expect((await read(reader, `/v1/tasks/${task.id}/logs?after=${t1.cursor}`)).lines).toEqual([]);
  });

  it("a batch whose R2 object is gone (or unreadable) is skipped, not a 500, and following moves past it", async () => {
    const { team: t, agent, reader } = await team();
    const path = "/v1/workers/w1/logs";
    await append(agent, "w1", { lines: ["a1"] });
    const start = (await read(reader, path)).cursor;
    const b = await append(agent, "w1", { lines: ["b1", "b2"] });
    const c = await append(agent, "w1", { lines: ["c1"] });
    await append(agent, "w1", { lines: ["d1"] });
    const { rows } = await stored(t.team_id);
    const keyOf = (id: string) => rows.find((r) => r.id === id)!.r2_key;
    // As a bucket lifecycle rule would, and a damaged object.
    await env.BUCKET.delete(keyOf(b.batch_id));
    await env.BUCKET.put(keyOf(c.batch_id), "not json\n");

    expect(texts(await read(reader, path))).toEqual(["a1", "d1"]);
    const followed = await read(reader, `${path}?after=${start}`);
    expect(texts(followed)).toEqual(["d1"]);
    expect(await read(reader, `${path}?after=${followed.cursor}`)).toEqual({ lines: [], cursor: followed.cursor });
    // Every object gone: the worker was seen (it has index rows), so 200 with no lines.
    for (const r of rows) await env.BUCKET.delete(r.r2_key);
    expect((await read(reader, path)).lines).toEqual([]);
  });
});

describe("logs: who may log and who exists", () => {
  it("a worker may log before its first heartbeat; logging does not create it; a worker never seen is 404", async () => {
    const { agent, reader } = await team();
    await expectProblem(await call("/v1/workers/ghost/logs", { key: reader }), 404);
    await expectProblem(await call("/v1/workers/ghost/logs?after=WzAsMF0", { key: reader }), 404);

    await append(agent, "early", { lines: ["booting"] });
    expect(texts(await read(reader, "/v1/workers/early/logs"))).toEqual(["booting"]);
    await expectProblem(await call("/v1/workers/early", { key: reader }), 404);

    // A worker that heart-beat but never logged: 200, no lines.
    await workerHeartbeat(agent, "quiet", { role: "executor", status: "idle" });
    expect((await read(reader, "/v1/workers/quiet/logs")).lines).toEqual([]);
  });

  it("a read key cannot append (403), no key is 401, and nothing is stored; agent keys read too", async () => {
    const { team: t, agent, reader } = await team();
    const refused = await expectProblem(await postLogs(reader, "w1", { lines: ["from a reader"] }), 403);
    expect(refused.detail).toContain("agent");
    await expectProblem(await call("/v1/workers/w1/logs", { method: "POST", json: { lines: ["anonymous"] } }), 401);
    await expectProblem(await call("/v1/workers/w1/logs"), 401);
    const task = await createTask(agent);
    await expectProblem(await call(`/v1/tasks/${task.id}/logs`), 401);
    expect(await stored(t.team_id)).toEqual({ objects: {}, rows: [] });

    await append(agent, "w1", { lines: ["from the agent"] });
    expect(texts(await read(agent, "/v1/workers/w1/logs"))).toEqual(["from the agent"]);
    expect(texts(await read(t.api_key, "/v1/workers/w1/logs"))).toEqual(["from the agent"]);
  });
});

describe("logs: bad input", () => {
  it("refuses bad batches with 400 naming the field (and the line's index), storing nothing", async () => {
    const { team: t, agent } = await team();
    const task = await createTask(agent);
    const cases: [unknown, string][] = [
      [{ lines: [] }, "lines"],
      [{ lines: Array.from({ length: 1001 }, () => "x") }, "lines"],
      [{ lines: ["fine", "x".repeat(8193)] }, "lines.1"],
      // 4,097 characters, 8,194 bytes: the limit is in bytes.
      [{ lines: ["é".repeat(4097)] }, "lines.0"],
      [{ lines: ["a", "b", 7] }, "lines.2"],
      [{ lines: ["a", null] }, "lines.1"],
      [{ lines: [{ text: "a" }] }, "lines.0"],
      [{ lines: [["a"]] }, "lines.0"],
      [{ lines: "a single string" }, "lines"],
      [{ lines: null }, "lines"],
      [{}, "lines"],
      [{ task_id: "has space", lines: ["a"] }, "task_id"],
      [{ task_id: 42, lines: ["a"] }, "task_id"],
      [{ task_id: task.id, lines: ["ok", "y".repeat(9000), "ok"] }, "lines.1"],
    ];
    for (const [body, path] of cases) {
      const problem = await expectProblem(await postLogs(agent, "w1", body), 400);
      expect(errorPaths(problem), JSON.stringify(body).slice(0, 80)).toEqual([path]);
    }
    const tooLong = await expectProblem(await postLogs(agent, "w1", { lines: ["a", "b", "c", "z".repeat(8193)] }), 400);
    expect(tooLong.errors).toEqual([{ path: "lines.3", message: expect.stringContaining("8192 bytes") }]);
    for (const body of ["[]", '"lines"', "null", '{"lines": ["a"]', "not json"]) {
      const res = await call("/v1/workers/w1/logs", { method: "POST", key: agent, headers: { "Content-Type": "application/json" }, body });
      await expectProblem(res, 400);
    }
    // Bad worker ids in the path.
    for (const wid of ["a%3Ab", "has%20space", "x".repeat(129)]) {
      const problem = await expectProblem(await postLogs(agent, wid, { lines: ["a"] }), 400);
      expect(errorPaths(problem)).toEqual(["wid"]);
    }
    // A task the team does not have.
    const missing = await expectProblem(await postLogs(agent, "w1", { task_id: "task_nope", lines: ["a"] }), 404);
    expect(missing.detail).toContain("task_nope");
    expect(await stored(t.team_id)).toEqual({ objects: {}, rows: [] });

    // At the limits exactly, it is stored.
    await append(agent, "w1", { lines: ["z".repeat(8192), "é".repeat(4096)] });
    await append(agent, "w1", { lines: Array.from({ length: 1000 }, () => "x") });
    expect((await stored(t.team_id)).rows.map((r) => r.line_count)).toEqual([2, 1000]);
  });

  it("refuses bad read parameters with 400 naming each", async () => {
    const { agent, reader } = await team();
    const task = await createTask(agent);
    await append(agent, "w1", { task_id: task.id, lines: ["a"] });
    const cursorOf = (key: unknown) => btoa(JSON.stringify(key)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
    for (const base of ["/v1/workers/w1/logs", `/v1/tasks/${task.id}/logs`]) {
      for (const lines of ["0", "-1", "5001", "1.5", "abc", ""]) {
        const problem = await expectProblem(await call(`${base}?lines=${lines}`, { key: reader }), 400);
        expect(errorPaths(problem), `${base} lines=${lines}`).toEqual(["lines"]);
      }
      for (const after of ["garbage!", "e30", cursorOf([1]), cursorOf(["1", 0]), cursorOf([-1, 0]), cursorOf([1.5, 0]), cursorOf([1, 1001]), cursorOf({ seq: 1 }), "x".repeat(201)]) {
        const problem = await expectProblem(await call(`${base}?after=${encodeURIComponent(after)}`, { key: reader }), 400);
        expect(errorPaths(problem), `${base} after=${after.slice(0, 20)}`).toEqual(["after"]);
      }
    }
    const badTask = await expectProblem(await call("/v1/workers/w1/logs?task_id=a%3Ab", { key: reader }), 400);
    expect(errorPaths(badTask)).toEqual(["task_id"]);
  });
});

describe("logs: cross-team", () => {
  it("team B gets 404 on team A's worker and task logs, and cannot log about A's task", async () => {
    const a = await team();
    const b = await team();
    const secret = "A-confidential-log-line";
    const taskA = await createTask(a.agent, { title: "A's task" });
    await append(a.agent, "wa", { task_id: taskA.id, lines: [secret] });
    const before = await stored(a.team.team_id);
    const aTail = await read(a.reader, "/v1/workers/wa/logs");

    for (const path of ["/v1/workers/wa/logs", `/v1/workers/wa/logs?after=${aTail.cursor}`, `/v1/tasks/${taskA.id}/logs`, `/v1/tasks/${taskA.id}/logs?after=WzAsMF0`]) {
      const res = await call(path, { key: b.team.api_key });
      const text = await res.clone().text();
      await expectProblem(res, 404);
      expect(text, path).not.toContain(secret);
    }
    // B's own worker, filtered by A's task: 404 (the task is not B's).
    await workerHeartbeat(b.agent, "wb", { role: "executor", status: "idle" });
    await expectProblem(await call(`/v1/workers/wb/logs?task_id=${taskA.id}`, { key: b.team.api_key }), 404);
    // B cannot log about A's task, under any worker name.
    for (const wid of ["wb", "wa"]) await expectProblem(await postLogs(b.agent, wid, { task_id: taskA.id, lines: ["B was here"] }), 404);
    expect(await stored(b.team.team_id)).toEqual({ objects: {}, rows: [] });

    // B may use the same worker name: its lines stay B's, A's stay A's.
    await append(b.agent, "wa", { lines: ["B's own line"] });
    expect(texts(await read(b.reader, "/v1/workers/wa/logs"))).toEqual(["B's own line"]);
    // A cursor from A's log reads nothing of A's for B.
    expect(texts(await read(b.reader, "/v1/workers/wa/logs?after=WzAsMF0"))).toEqual(["B's own line"]);
    expect(texts(await read(b.reader, `/v1/workers/wa/logs?after=${aTail.cursor}`))).not.toContain(secret);
    expect(await read(a.reader, "/v1/workers/wa/logs")).toEqual(aTail);
    expect(await stored(a.team.team_id)).toEqual(before);
    const bStored = await stored(b.team.team_id);
    expect(Object.keys(bStored.objects).every((k) => k.startsWith(`logs/${b.team.team_id}/`))).toBe(true);
  });
});

describe("logs: retention", () => {
  it("the cron deletes batches older than 30 days, their R2 objects and their index rows, and keeps the rest", async () => {
    const { team: t, agent, reader } = await team();
    const old = await append(agent, "w1", { lines: ["31 days ago"] });
    const recent = await append(agent, "w1", { lines: ["29 days ago"] });
    const fresh = await append(agent, "w1", { lines: ["now"] });
    await env.DB.prepare("UPDATE log_batches SET created_at = ? WHERE id = ?").bind(isoDaysAgo(31), old.batch_id).run();
    await env.DB.prepare("UPDATE log_batches SET created_at = ? WHERE id = ?").bind(isoDaysAgo(29), recent.batch_id).run();
    const before = await stored(t.team_id);
    expect(before.rows).toHaveLength(3);
    const oldKey = before.rows.find((r) => r.id === old.batch_id)!.r2_key;

    await runCron();

    const after = await stored(t.team_id);
    expect(after.rows.map((r) => r.id)).toEqual([recent.batch_id, fresh.batch_id]);
    expect(Object.keys(after.objects).sort()).toEqual(after.rows.map((r) => r.r2_key).sort());
    expect(await env.BUCKET.head(oldKey)).toBeNull();
    expect(texts(await read(reader, "/v1/workers/w1/logs"))).toEqual(["29 days ago", "now"]);
    // Following from before the deleted batch reads on from the ones kept.
    expect(texts(await read(reader, "/v1/workers/w1/logs?after=WzAsMF0"))).toEqual(["29 days ago", "now"]);
    // A second run changes nothing more.
    await runCron();
    expect(await stored(t.team_id)).toEqual(after);
  });

  it("the cron sweeps a backlog of more than one chunk across teams", async () => {
    const x = await team();
    const y = await team();
    for (const k of [x, y]) await append(k.agent, "w1", { lines: ["keep"] });
    // 1,100 old rows (over one R2 delete of 1,000 keys), with their objects, straight in storage.
    const old = isoDaysAgo(40);
    const stmts: D1PreparedStatement[] = [];
    for (let i = 0; i < 1100; i++) {
      const k = i % 2 === 0 ? x : y;
      const key = `logs/${k.team.team_id}/w1/old-${i}.jsonl`;
      await env.BUCKET.put(key, `${JSON.stringify({ text: `old ${i}` })}\n`);
      stmts.push(env.DB.prepare("INSERT INTO log_batches VALUES (?, ?, ?, 'w1', NULL, ?, 1, 10, ?)").bind(k.team.team_id, i + 1, `old-${i}`, key, old));
    }
    for (let i = 0; i < stmts.length; i += 100) await env.DB.batch(stmts.slice(i, i + 100));
    // One read fetches at most 200 batches (src/domain/logs.ts), so this tail of 551 one-line batches has 200 lines.
    expect((await read(x.reader, "/v1/workers/w1/logs?lines=5000")).lines).toHaveLength(200);

    await runCron();

    for (const k of [x, y]) {
      const s = await stored(k.team.team_id);
      expect(s.rows.map((r) => r.line_count)).toEqual([1]);
      expect(Object.keys(s.objects)).toEqual([s.rows[0]!.r2_key]);
      expect(texts(await read(k.reader, "/v1/workers/w1/logs"))).toEqual(["keep"]);
    }
  });
});
