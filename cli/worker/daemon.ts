import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { printable } from "../output";
import { pickRotatedToken } from "../rotation";
import { agentCommandProblem, agentDidNotStart } from "./agent-command";
import { addReports, type AgentReport, failureText, fitJson, head, readAgentReport, tail } from "./agent-result";
import { type AgentExit, type AgentRun, startAgent } from "./agent-process";
import { ApiError, type ClaimResult, type LeasedTaskResponse, newClaimId, type RequestOptions, StoppedError, type TaskStateResponse, type WorkerApi } from "./api";
import { readFileHead } from "./file-head";
import { LogShipper } from "./log-shipper";
import { createPlannedTasks, describePlannedTasks, setAsideStaleSpecs, specFiles } from "./planner";
import { renderPrompt, renderTaskFile, taskPaths } from "./task-file";

export interface DaemonOptions {
  api: WorkerApi;
  name: string;
  role: string;
  /** The worker's own directory (absolute): `tasks/`, `outputs/`, and the agent's working directory. */
  dir: string;
  command: string[];
  env?: NodeJS.ProcessEnv;
  /** Stop after handling this many tasks (completed, failed or lost alike). */
  maxTasks?: number;
  /** Wait between claims when there is nothing to do (default 5 s). */
  pollIntervalMs?: number;
  /** On stop, how long a running agent may go on before it is killed (default 30 s). */
  graceMs?: number;
  /** Lease heartbeats while a task is held (default: a third of the lease, 5 minutes). */
  leaseHeartbeatMs?: number;
  /** Worker heartbeats (default 30 s; the cron calls a worker lost after 5 minutes unseen). */
  workerHeartbeatMs?: number;
  /** How often a question is polled for its answer (default 5 s). */
  questionPollMs?: number;
  /** After SIGTERM, how long an agent has before SIGKILL (default 10 s). */
  killAfterMs?: number;
  /** The longest a 429's Retry-After is waited before claiming again (default 5 minutes). */
  maxRetryAfterMs?: number;
  /** The daemon's terminal: the agent's output and the daemon's own lines. */
  out?: (text: string) => void;
  /** Aborted on the first SIGTERM/SIGINT: claim nothing more, let the agent finish within the grace. */
  stop?: AbortSignal;
  /** Aborted on a second signal: kill the agent now. */
  stopNow?: AbortSignal;
  logs?: { flushMs?: number; batchLines?: number };
  /**
   * Where the running agent's pid (its process group) is kept while it runs: `switchboard
   * stop` kills that group too when it has to SIGKILL this worker, since a worker killed so
   * cannot stop its agent, which runs in a group of its own.
   */
  agentPidFile?: string;
}

export interface DaemonSummary {
  handled: number;
  completed: number;
  failed: number;
  /** Tasks whose lease was lost (cancelled, expired, claimed again): neither completed nor failed. */
  lost: number;
  /** Tasks given back to the queue because the worker was stopped (their attempt not used up). */
  released: number;
  /** Why the worker stopped on its own, when it did: the agent command would not start. */
  fatal?: string;
}

type Outcome = "completed" | "failed" | "lost" | "released";
type WorkerStatus = "idle" | "working" | "waiting";

/** The API's limits: a result (task-schemas.ts) and a question's text (routes/questions.ts). */
const RESULT_CHARS = 200_000;
const QUESTION_CHARS = 20_000;
/** A result's share of the API's 1 MiB body (the rest of the report is a few figures). */
const RESULT_JSON_BYTES = 900 * 1024;
const STDOUT_TAIL = 20_000;
/**
 * Once stopping, a request that must not hold the stop up (the last idle heartbeat, a release
 * after a second signal, asking what an interrupted claim took) gets one try this long.
 */
const QUICK: RequestOptions = { retries: 0, timeoutMs: 3000 };
/**
 * How long past the lease's expiry (as last heartbeated before the report) a report is still
 * tried: the worker's clock may be behind the server's. A report that comes too late is
 * answered 409 anyway.
 */
const LEASE_CLOCK_SLACK_MS = 60_000;

/** `switchboard worker`: claim a task of the role, run the agent on it, report, repeat. */
export async function runDaemon(options: DaemonOptions): Promise<DaemonSummary> {
  return new Daemon(options).run();
}

class Daemon {
  private readonly o: DaemonOptions;
  private readonly logs: LogShipper;
  private status: WorkerStatus = "idle";
  private currentTask: string | null = null;
  private agent: AgentRun | null = null;
  /** Why the current task's agent was killed, if it was. */
  private killedFor: "stop" | "now" | "lease" | null = null;
  private leaseLost: string | null = null;
  private graceTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | null = null;
  /** The held lease's expiry (epoch ms) as the last heartbeat (or the claim) set it. */
  private leaseExpiresAt = 0;
  /** Ends the held lease's heartbeats (at the report, or when the task is done with). */
  private stopLeaseHeartbeats: () => void = () => {};
  /** Set when the agent command would not start: the worker stops after giving the task back. */
  private fatal: string | null = null;

  constructor(o: DaemonOptions) {
    this.o = o;
    // A second signal cuts a batch in flight short; the first lets the logs go on being sent.
    this.logs = new LogShipper({ send: (body) => o.api.postLogs(o.name, body, { signal: o.stopNow }), warn: (l) => this.print(`[switchboard] ${l}\n`), ...o.logs });
  }

  private get stopping(): boolean {
    return this.o.stop?.aborted === true;
  }

  private get stoppingNow(): boolean {
    return this.o.stopNow?.aborted === true;
  }

  /** How long a log flush may take: after a second signal, nothing more is waited for. */
  private get flushMs(): number {
    return this.stoppingNow ? 0 : 5000;
  }

  async run(): Promise<DaemonSummary> {
    const o = this.o;
    mkdirSync(join(o.dir, "tasks"), { recursive: true });
    mkdirSync(join(o.dir, "outputs"), { recursive: true });
    const summary: DaemonSummary = { handled: 0, completed: 0, failed: 0, lost: 0, released: 0 };
    o.stop?.addEventListener("abort", () => this.onStop(), { once: true });
    o.stopNow?.addEventListener("abort", () => this.onStopNow(), { once: true });
    // Periodic heartbeats go on while an agent finishes within the grace; a second signal cuts them.
    const beat = setInterval(() => void this.heartbeat({ signal: o.stopNow }), o.workerHeartbeatMs ?? 30_000);
    this.say(undefined, `worker ${o.name} (${o.role}) in ${o.dir}: ${o.command.join(" ")}`);
    await this.heartbeat({ signal: o.stop });
    try {
      while (!this.stopping && !this.fatal && (o.maxTasks === undefined || summary.handled < o.maxTasks)) {
        let claim: ClaimResult;
        const claimId = newClaimId();
        try {
          claim = await o.api.claim(o.name, o.role, claimId, { signal: o.stop });
        } catch (e) {
          if (e instanceof StoppedError) {
            claim = await this.interruptedClaim(claimId);
            if (claim.kind !== "claimed") break;
          } else {
            // A refused key, scope or worker name will not get better by waiting.
            if (e instanceof ApiError && [400, 401, 403, 404].includes(e.status)) throw new Error(`claim refused: ${e.message}`);
            this.say(undefined, `claim failed: ${message(e)}`);
            await this.pause(o.pollIntervalMs ?? 5000);
            continue;
          }
        }
        if (claim.kind === "none") {
          await this.pause(o.pollIntervalMs ?? 5000);
          continue;
        }
        if (claim.kind === "limited") {
          const wait = Math.min(claim.retryAfterMs ?? o.pollIntervalMs ?? 5000, o.maxRetryAfterMs ?? 300_000);
          this.say(undefined, `claim refused (${claim.detail}); waiting ${Math.round(wait / 1000)} s`);
          await this.pause(wait);
          continue;
        }
        summary.handled += 1;
        // A stop that came while the claim was in flight: the agent is not started at all.
        const outcome = this.stopping ? await this.releaseUnstarted(claim.task) : await this.runTask(claim.task);
        summary[outcome] += 1;
      }
    } finally {
      clearInterval(beat);
      this.setStatus("idle", null);
      // Once, briefly: a stop must not wait on a server that does not answer.
      await this.heartbeat(this.stopping ? { ...QUICK, signal: o.stopNow } : {});
      this.say(undefined, `worker ${o.name} stopping: ${summary.handled} task(s), ${summary.completed} completed, ${summary.failed} failed, ${summary.lost} lost, ${summary.released} released`);
      await this.logs.close(this.flushMs);
    }
    return this.fatal ? { ...summary, fatal: this.fatal } : summary;
  }

  /**
   * The stop cut a claim short: its request may have been handled with the answer lost. Asked
   * again under the same claim id (once, briefly), the server returns the task it took, and
   * that task goes back at once rather than sitting claimed until its lease expires (had the
   * first request not arrived, this one may take a task, which goes back all the same).
   */
  private async interruptedClaim(claimId: string): Promise<ClaimResult> {
    try {
      return await this.o.api.claim(this.o.name, this.o.role, claimId, { ...QUICK, signal: this.o.stopNow });
    } catch {
      return { kind: "none" };
    }
  }

  private async releaseUnstarted(task: LeasedTaskResponse): Promise<Outcome> {
    this.say(task.id, `claimed ${task.id} "${task.title}" as the worker was stopped`);
    return this.release(task, {}, `worker stopped: ${this.o.name} was stopped as it claimed the task, before the agent started`);
  }

  private async runTask(task: LeasedTaskResponse): Promise<Outcome> {
    const o = this.o;
    const p = taskPaths(task.id);
    const at = (rel: string) => join(o.dir, rel);
    this.leaseLost = null;
    this.killedFor = null;
    this.leaseExpiresAt = Date.parse(task.lease.expires_at);
    this.setStatus("working", task.id);
    void this.heartbeat();
    this.say(task.id, `claimed ${task.id} "${task.title}" (attempt ${task.attempts} of ${task.max_attempts})`);

    const taskFile = renderTaskFile(task, o.name);
    writeFileSync(at(p.taskFile), taskFile);
    // Files an earlier attempt left must not pass for this attempt's.
    for (const f of [p.result, p.question, p.answer]) if (existsSync(at(f))) renameSync(at(f), at(`${f}.prev`));
    const stale = setAsideStaleSpecs(at(p.specs));
    if (stale.length > 0) this.say(task.id, `moved ${stale.length} task spec(s) left by an earlier task to ${p.specs}/stale/`);

    this.stopLeaseHeartbeats = await this.startLeaseHeartbeats(task);
    let report: AgentReport = {};
    let exit: AgentExit = { code: null, signal: null };
    let answered: { question: string; answer: string; answerFile: string } | null = null;
    try {
      for (let round = 1; ; round++) {
        // Cancelled (or claimed again) before the agent started, or while it waited for an answer.
        if (this.leaseLost) return await this.lost(task, this.leaseLost);
        const started = Date.now();
        const run = startAgent({
          command: o.command,
          cwd: o.dir,
          env: this.agentEnv(task),
          input: renderPrompt(taskFile, answered),
          onLine: (_stream, line) => this.logs.push(task.id, line),
          onChunk: (_stream, text) => this.print(text),
        });
        this.agent = run;
        if (o.agentPidFile && run.pid !== undefined) writeFileSync(o.agentPidFile, `${run.pid}\n`);
        if (o.stopNow?.aborted) this.kill("now", 0);
        else if (this.stopping) this.armGrace();
        exit = await run.exited;
        this.agent = null;
        if (o.agentPidFile) rmSync(o.agentPidFile, { force: true });
        clearTimeout(this.graceTimer);
        const runReport = readAgentReport(run.stdout()) ?? {};
        report = addReports(report, { ...runReport, duration_ms: runReport.duration_ms ?? Date.now() - started });

        if (this.leaseLost) return await this.lost(task, this.leaseLost);
        const notStarted = agentDidNotStart(exit, run.stderr(), () => agentCommandProblem(o.command, o.dir, o.env ?? process.env));
        if (notStarted !== null && this.killedFor === null) {
          // Not the task's failure: every task would fail the same way on this machine.
          this.fatal = `the agent command (${o.command.join(" ")}) did not start: ${notStarted}. Install what it runs, or give the worker a command that runs here (after --, or in switchboard.fleet.json)`;
          return await this.release(task, report, `worker stopped: ${o.name}'s agent command did not start: ${notStarted}`);
        }
        if (this.killedFor === "stop") return await this.release(task, report, `worker stopped: ${o.name} was stopped and the agent did not finish within the grace period`);
        if (this.killedFor === "now") return await this.release(task, report, `worker stopped: ${o.name} was told twice to stop, and its agent was killed at once`);
        if (!existsSync(at(p.question))) {
          return exit.code === 0 && report.is_error !== true ? await this.complete(task, report, run) : await this.fail(task, report, failureText(exit, run.stderr(), report));
        }
        let question: string;
        try {
          question = readFileHead(at(p.question), QUESTION_CHARS).trim();
        } catch (e) {
          return await this.fail(task, report, `could not read the agent's question, ${p.question}: ${message(e)}`);
        }
        if (!question) return await this.fail(task, report, `the agent wrote an empty ${p.question}`);
        if (this.stopping) return await this.release(task, report, `worker stopped: ${o.name} was stopped while the agent had a question`);
        const asked = await this.ask(task, question);
        if (this.leaseLost) return await this.lost(task, this.leaseLost);
        if (asked.kind === "error") return await this.fail(task, report, asked.reason);
        if (asked.kind === "stopped") return await this.release(task, report, `worker stopped: ${o.name} was stopped while waiting for an answer`);
        const answer = asked.answer;
        writeFileSync(at(p.answer), answer);
        renameSync(at(p.question), at(`outputs/${task.id}_question_${round}.md`));
        writeFileSync(at(`outputs/${task.id}_answer_${round}.md`), answer);
        answered = { question, answer, answerFile: p.answer };
        this.setStatus("working", task.id);
        void this.heartbeat();
        this.say(task.id, "answered; running the agent again");
      }
    } finally {
      this.stopLeaseHeartbeats();
      this.setStatus("idle", null);
      if (existsSync(at(p.taskFile))) {
        mkdirSync(at("tasks/done"), { recursive: true });
        renameSync(at(p.taskFile), at(`tasks/done/${task.id}.md`));
      }
    }
  }

  private async complete(task: LeasedTaskResponse, report: AgentReport, run: AgentRun): Promise<Outcome> {
    const p = taskPaths(task.id);
    const resultFile = join(this.o.dir, p.result);
    let result: string;
    try {
      result = existsSync(resultFile) ? readFileHead(resultFile, RESULT_CHARS) : (report.result ?? tail(run.stdout(), STDOUT_TAIL));
    } catch (e) {
      return this.fail(task, report, `could not read the agent's result, ${p.result}: ${message(e)}`);
    }
    if (specFiles(join(this.o.dir, p.specs)).length > 0) {
      try {
        const planned = await createPlannedTasks(this.o.api, join(this.o.dir, p.specs), task.id);
        for (const c of planned.created) this.say(task.id, `${c.existed ? "found" : "created"} ${c.id} (${c.role}) "${c.title}" from ${p.specs}/${c.file}`);
        for (const r of planned.rejected) this.say(task.id, `did not create a task from ${p.specs}/${r.file}: ${r.reason}`);
        result += describePlannedTasks(planned);
      } catch (e) {
        return this.fail(task, report, `could not create the planned tasks: ${message(e)}`);
      }
    }
    return this.finish(task, "complete", report, result || "(no output)");
  }

  private fail(task: LeasedTaskResponse, report: AgentReport, reason: string): Promise<Outcome> {
    return this.finish(task, "fail", report, reason);
  }

  private async finish(task: LeasedTaskResponse, how: "complete" | "fail", report: AgentReport, result: string): Promise<Outcome> {
    // The lease's heartbeats end here, and the report is tried until the lease ends as they
    // last set it (and the clock slack), a deadline fixed now, not a fixed five times: an
    // outage shorter than the lease must not cost the run and its reported spend. Heartbeats
    // going on would keep moving that deadline, so a server that answers them but refuses
    // this one report (a 5xx on every try) would hold the worker for ever; and with the
    // report given up, a lease kept alive would only keep the task from running again. The
    // work the lease protects is over: what comes after the agent's exit and still needs it
    // (a question waiting for its answer, a planner's tasks being created) comes before this.
    // A second signal cuts the retries short.
    this.stopLeaseHeartbeats();
    const deadline = this.leaseExpiresAt + LEASE_CLOCK_SLACK_MS;
    this.say(task.id, how === "complete" ? `completing ${task.id}` : `failing ${task.id}: ${result.split("\n")[0]}`);
    await this.logs.flush(this.flushMs);
    const body = { lease_id: task.lease.id, result: fitJson(head(result, RESULT_CHARS), RESULT_JSON_BYTES), ...usage(report) };
    const options: RequestOptions = { until: () => deadline, signal: this.o.stopNow };
    try {
      const ended = how === "complete" ? await this.o.api.complete(task.id, body, options) : await this.o.api.fail(task.id, body, options);
      this.say(task.id, `${task.id} is ${ended.status}`);
      return how === "complete" ? "completed" : "failed";
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        // A retry's 409 may be this very report's doing: an earlier try was handled, and its
        // answer lost on the way back (a proxy's 502, a timeout), which ended the lease the
        // retry then used. The task says whether it ended as this worker reported.
        const ended = e.tries > 1 ? await this.endedAsReported(task, how, body.result) : null;
        if (ended) {
          this.say(task.id, `${task.id} is ${ended} (an earlier try of the report was handled, though its answer was lost)`);
          return how === "complete" ? "completed" : "failed";
        }
        return this.lost(task, e.detail);
      }
      if (e instanceof StoppedError) return this.release(task, report, `worker stopped: ${this.o.name} was told twice to stop while it reported the attempt`);
      this.say(task.id, `could not report ${task.id}: ${message(e)} (its lease will expire and it will be retried)`);
      return "lost";
    }
  }

  /**
   * The task's status when it shows the end this worker just reported, else null: completed
   * by this worker with this result; or, for a failure, failed, or pending with the backoff
   * a fail sets (available after it was last changed; a lease that expired or a release
   * makes it available at once), by this worker with this result. Without a lease either way.
   */
  private async endedAsReported(task: LeasedTaskResponse, how: "complete" | "fail", result: string): Promise<string | null> {
    let now: TaskStateResponse;
    try {
      now = await this.o.api.task(task.id);
    } catch (e) {
      this.say(task.id, `could not read ${task.id} to see how it ended: ${message(e)}`);
      return null;
    }
    if (now.worker_id !== this.o.name || now.lease_expires_at !== null || now.result !== result) return null;
    if (how === "complete") return now.status === "completed" ? now.status : null;
    if (now.status === "failed") return now.status;
    return now.status === "pending" && Date.parse(now.available_at) > Date.parse(now.updated_at) ? now.status : null;
  }

  /**
   * The worker is stopping before the agent finished: the task goes back to the queue for
   * another worker, without using up an attempt (a stop is not the task's failure); what the
   * agent spent so far is still reported.
   */
  private async release(task: LeasedTaskResponse, report: AgentReport, reason: string): Promise<Outcome> {
    this.say(task.id, `releasing ${task.id}: ${reason}`);
    await this.logs.flush(this.flushMs);
    try {
      const body = { lease_id: task.lease.id, reason, ...usage(report) };
      let released: Awaited<ReturnType<WorkerApi["release"]>>;
      try {
        released = await this.o.api.release(task.id, body, this.stoppingNow ? QUICK : { signal: this.o.stopNow });
      } catch (e) {
        // After a second signal: once more, briefly, and then the worker exits whatever the answer.
        if (!(e instanceof StoppedError)) throw e;
        released = await this.o.api.release(task.id, body, QUICK);
      }
      this.say(task.id, `${task.id} is ${released.status} again`);
      return "released";
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) return this.lost(task, e.detail);
      this.say(task.id, `could not release ${task.id}: ${message(e)} (its lease will expire and it will be retried)`);
      return "lost";
    }
  }

  private async lost(task: LeasedTaskResponse, why: string): Promise<Outcome> {
    this.say(task.id, `lost the lease on ${task.id}: ${why.trim().replace(/[.;:]+$/, "")}; moving on without a result`);
    await this.logs.flush(this.flushMs);
    return "lost";
  }

  /** Asks, then waits for the answer while the lease heartbeats go on. */
  private async ask(task: LeasedTaskResponse, text: string): Promise<{ kind: "answered"; answer: string } | { kind: "stopped" } | { kind: "error"; reason: string }> {
    let questionId: string;
    try {
      questionId = (await this.o.api.ask(this.o.name, task.id, text, { signal: this.o.stop })).id;
    } catch (e) {
      // 409: the task is no longer this worker's to ask about (lease expired, cancelled).
      if (e instanceof ApiError && e.status === 409) this.leaseLost = e.detail;
      if (e instanceof StoppedError) return { kind: "stopped" };
      return { kind: "error", reason: `could not ask the agent's question: ${message(e)}` };
    }
    this.setStatus("waiting", task.id);
    void this.heartbeat();
    this.say(task.id, `asked ${questionId}; waiting for an answer`);
    while (!this.leaseLost && !this.stopping) {
      await this.pause(this.o.questionPollMs ?? 5000);
      if (this.leaseLost || this.stopping) break;
      try {
        const q = await this.o.api.question(questionId, { signal: this.o.stop });
        if (q.status === "answered" && q.answer !== null) {
          this.say(task.id, `${questionId} answered`);
          return { kind: "answered", answer: q.answer };
        }
      } catch (e) {
        if (!(e instanceof StoppedError)) this.say(task.id, `could not read ${questionId}: ${message(e)}`);
      }
    }
    return { kind: "stopped" };
  }

  /**
   * Heartbeats the lease now (which marks a claimed task running) and then as
   * `leaseHeartbeatEvery` says, until the function returned is called; the answer to a
   * heartbeat in flight then is ignored.
   */
  private async startLeaseHeartbeats(task: LeasedTaskResponse): Promise<() => void> {
    const every = this.o.leaseHeartbeatMs ?? leaseHeartbeatEvery(Date.parse(task.lease.expires_at) - Date.now());
    let busy = false;
    let stopped = false;
    const beat = async () => {
      if (busy || stopped || this.leaseLost) return;
      busy = true;
      try {
        const beaten = await this.o.api.heartbeatTask(task.id, task.lease.id, { signal: this.o.stopNow });
        if (stopped) return;
        const until = Date.parse(beaten?.lease?.expires_at ?? "");
        if (Number.isFinite(until)) this.leaseExpiresAt = Math.max(this.leaseExpiresAt, until);
      } catch (e) {
        if (e instanceof StoppedError || stopped) return;
        if (e instanceof ApiError && (e.status === 409 || e.status === 404)) {
          this.leaseLost = e.detail;
          this.say(task.id, `lease heartbeat refused: ${e.detail}`);
          this.kill("lease", this.o.killAfterMs ?? 10_000);
          this.wake?.();
        } else {
          this.say(task.id, `lease heartbeat failed: ${message(e)}`);
        }
      } finally {
        busy = false;
      }
    };
    await beat();
    const timer = setInterval(() => void beat(), every);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }

  private agentEnv(task: LeasedTaskResponse): NodeJS.ProcessEnv {
    const o = this.o;
    const base = o.env ?? process.env;
    const p = taskPaths(task.id);
    const rotated = pickRotatedToken(base);
    return {
      ...base,
      SWITCHBOARD_TASK_ID: task.id,
      SWITCHBOARD_TASK_TITLE: task.title,
      SWITCHBOARD_TASK_FILE: join(o.dir, p.taskFile),
      SWITCHBOARD_TASK_ATTEMPT: String(task.attempts),
      SWITCHBOARD_OUTPUTS_DIR: join(o.dir, "outputs"),
      SWITCHBOARD_RESULT_FILE: join(o.dir, p.result),
      SWITCHBOARD_QUESTION_FILE: join(o.dir, p.question),
      SWITCHBOARD_ANSWER_FILE: join(o.dir, p.answer),
      SWITCHBOARD_WORKER: o.name,
      SWITCHBOARD_ROLE: o.role,
      ...(rotated ? { CLAUDE_CODE_OAUTH_TOKEN: rotated.token, SWITCHBOARD_TOKEN_INDEX: rotated.index } : {}),
    };
  }

  private onStop(): void {
    this.say(this.currentTask ?? undefined, this.agent ? `stopping: the agent has ${Math.round((this.o.graceMs ?? 30_000) / 1000)} s to finish` : "stopping");
    if (this.agent) this.armGrace();
    this.wake?.();
  }

  private onStopNow(): void {
    // A second signal: the agent is killed at once (SIGKILL to its group), not given more time;
    // requests in flight are cut short (they take stopNow), a held task is released briefly.
    this.say(this.currentTask ?? undefined, "stopping now: a second signal");
    if (this.agent) this.kill("now", 0);
    this.wake?.();
  }

  private armGrace(): void {
    clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => this.kill("stop", this.o.killAfterMs ?? 10_000), this.o.graceMs ?? 30_000);
  }

  private kill(why: "stop" | "now" | "lease", killAfterMs: number): void {
    if (!this.agent) return;
    // A second signal during the grace replaces "did not finish in time" as the reason.
    if (this.killedFor === null || (why === "now" && this.killedFor === "stop")) this.killedFor = why;
    this.say(this.currentTask ?? undefined, `stopping the agent (${why === "stop" ? "worker stopped" : why === "now" ? "worker stopped at once: a second signal" : "lease lost"})`);
    this.agent.stop(killAfterMs);
  }

  /** Sleeps, woken early by a stop or a lost lease. */
  private pause(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private setStatus(status: WorkerStatus, task: string | null): void {
    this.status = status;
    this.currentTask = task;
  }

  private async heartbeat(options: RequestOptions = {}): Promise<void> {
    try {
      await this.o.api.heartbeatWorker(this.o.name, { role: this.o.role, status: this.status, current_task: this.currentTask }, options);
    } catch (e) {
      if (!(e instanceof StoppedError)) this.print(`[switchboard] worker heartbeat failed: ${message(e)}\n`);
    }
  }

  /**
   * A daemon line: on the terminal, and in the task's logs. On the terminal its control
   * characters are shown, not sent (as the people's CLI shows them): a task title may come
   * from a GitHub issue, a planned task's from an agent, and an escape sequence in either
   * would reach the terminal otherwise.
   */
  private say(taskId: string | undefined, line: string): void {
    this.print(`[switchboard] ${printable(line)}\n`);
    this.logs.push(taskId, `[switchboard] ${line}`);
  }

  private print(text: string): void {
    (this.o.out ?? ((t: string) => process.stdout.write(t)))(text);
  }
}

function usage(r: AgentReport): { cost_usd?: number; tokens?: number; duration_ms?: number } {
  return {
    ...(r.cost_usd !== undefined ? { cost_usd: r.cost_usd } : {}),
    ...(r.tokens !== undefined ? { tokens: r.tokens } : {}),
    ...(r.duration_ms !== undefined ? { duration_ms: Math.round(r.duration_ms) } : {}),
  };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * How often a held lease is heartbeated by default: every minute, or every third of the lease
 * when that is shorter. A heartbeat is also how the worker learns that a person cancelled the
 * task (409), and until then the agent runs on, spending: a third of a 15-minute lease would
 * let a cancelled agent run for five minutes.
 */
export const LEASE_HEARTBEAT_MAX_MS = 60_000;
export function leaseHeartbeatEvery(leaseLeftMs: number): number {
  const lease = Number.isFinite(leaseLeftMs) ? leaseLeftMs : 15 * 60_000;
  return Math.max(1000, Math.min(LEASE_HEARTBEAT_MAX_MS, Math.floor(lease / 3)));
}
