import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentEvent } from "../src/domain/events";
import { DEFAULT_MAX_TURNS, STEPS, type Step } from "../src/domain/steps";
import { agentExit, signalGroup } from "./agent-exit";
import { applySummary, emptyUsage, UsageLines } from "./agent-output";
import { ChatLog } from "./chat-log";
import { callOptions, HttpError, isAbort, type SwitchboardClient } from "./client";
import { pickRotatedToken } from "./rotation";
import type { StepOutcome } from "./summary-table";

export interface RunOptions {
  sessionId: string;
  topicId: string;
  steps: Step[];
  /** Overrides every step's budget (`-t`); otherwise the topic's own (15/40/50/15/40/60 unless it set others). */
  maxTurns?: number;
  command: string[];
  env?: NodeJS.ProcessEnv;
  /** How often the chat log is uploaded while a step runs (default 5 s; SWITCHBOARD_LOG_UPLOAD_MS). */
  logUploadMs?: number;
  /** The chat log's part size and what the workspace keeps of it (ChatLog; tests make them small). */
  logPartBytes?: number;
  logMaxBytes?: number;
  out?: (text: string) => void;
  /** Where a failed step's reason is said as it fails (default stderr). */
  err?: (text: string) => void;
  /** Tests pass a signal; the CLI wires SIGINT, SIGTERM and SIGHUP to it. It stops the agent with SIGTERM. */
  interrupt?: AbortSignal;
  /** After `interrupt`, how long an agent may take to exit before SIGKILL (default 10 s; SWITCHBOARD_KILL_GRACE_MS). */
  killGraceMs?: number;
  /** A second Ctrl-C: SIGKILL the agent now. */
  forceKill?: AbortSignal;
}

/** Runs steps in order, stopping at the first failure or an interrupt; every step is reported as it goes. */
export async function runSteps(client: SwitchboardClient, options: RunOptions): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  const runId = crypto.randomUUID().slice(0, 8);
  const budgets = await turnBudgets(client, options);
  let stopped = false;
  for (const step of options.steps) {
    // Checked before each step: a Ctrl-C while the last one was being reported must not start
    // another. Steps not begun still get a row in the summary.
    if (stopped || options.interrupt?.aborted) {
      outcomes.push({ step, status: "skipped", turns: 0, max_turns: budgets[step], cost_usd: 0, duration_ms: 0 });
      continue;
    }
    const outcome = await runStep(client, options, step, runId, budgets[step]);
    outcomes.push(outcome);
    stopped = outcome.status !== "completed";
  }
  return outcomes;
}

/**
 * Each step's budget: `-t`, else the topic's own as the server holds it (set when the topic was
 * created, or by an earlier `-t`), read once; the defaults only when the topic cannot be read.
 */
async function turnBudgets(client: SwitchboardClient, o: RunOptions): Promise<Record<Step, number>> {
  const each = (f: (s: Step) => number) => Object.fromEntries(STEPS.map((s) => [s, f(s)])) as Record<Step, number>;
  if (o.maxTurns !== undefined) return each(() => o.maxTurns as number);
  try {
    const topic = await client.getTopic(o.sessionId, o.topicId, callOptions(o.interrupt));
    return each((s) => topic.steps?.[s]?.max_turns ?? DEFAULT_MAX_TURNS[s]);
  } catch (e) {
    (o.out ?? ((t: string) => process.stdout.write(t)))(`[switchboard] could not read the topic's turn budgets (${e instanceof HttpError ? `HTTP ${e.status}, ` : ""}${e instanceof Error ? e.message : String(e)}); using the defaults\n`);
    return each((s) => DEFAULT_MAX_TURNS[s]);
  }
}

async function runStep(client: SwitchboardClient, o: RunOptions, step: Step, runId: string, maxTurns: number): Promise<StepOutcome> {
  const out = o.out ?? ((t: string) => process.stdout.write(t));
  const event = (type: AgentEvent["type"], data: Record<string, unknown>): AgentEvent => ({
    // One id per run, step and type: a retried send is a duplicate, a re-run is new.
    id: `run-${runId}-${o.topicId}-${step}-${type}`,
    type,
    session_id: o.sessionId,
    topic_id: o.topicId,
    occurred_at: new Date().toISOString(),
    data,
  });
  /**
   * Sends one event: with the client's retries, stopped at once by a Ctrl-C (the send then
   * rejects with an AbortError); after a Ctrl-C, one short try, then a sentinel if configured
   * (`callOptions`), so the person gets their prompt back within seconds whatever the API does.
   */
  const report = (e: AgentEvent) => client.send(e, callOptions(o.interrupt));
  /** After a Ctrl-C a report that fails is said, not thrown: the summary and exit 130 still come. */
  const reportInterrupted = async (e: AgentEvent) => {
    try {
      await report(e);
    } catch (error) {
      out(`[switchboard] could not report ${e.type} for ${step} after the interrupt: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  };
  /** The step's end while no Ctrl-C had come: one that comes during its retries stops them, and it gets its one short try. */
  const sendEnd = async (e: AgentEvent) => {
    try {
      await report(e);
    } catch (error) {
      if (!isAbort(error)) throw error;
      await reportInterrupted(e);
    }
  };
  // Only `-t` sets the budget on the server; without it the topic keeps its own (the reducer
  // leaves max_turns alone when step_started carries none).
  const sendStarted = Date.now();
  try {
    await report(event("step_started", o.maxTurns === undefined ? { step } : { step, max_turns: o.maxTurns }));
  } catch (error) {
    if (!isAbort(error)) throw error;
  }
  if (o.interrupt?.aborted) {
    // Ctrl-C while the start was being reported (or retried): the step may be reported started,
    // so it is ended as interrupted, but its agent is never started only to be stopped at once.
    const duration_ms = Date.now() - sendStarted;
    await reportInterrupted(event("step_failed", { step, error: "interrupted", turns: 0, cost_usd: 0, duration_ms }));
    return { step, status: "interrupted", turns: 0, max_turns: maxTurns, cost_usd: 0, duration_ms, detail: "interrupted" };
  }

  const dir = mkdtempSync(join(tmpdir(), "switchboard-step-"));
  const summaryFile = join(dir, "summary.json");
  const usage = emptyUsage();
  const log = new ChatLog({ client, sessionId: o.sessionId, topicId: o.topicId, step, note: out, partBytes: o.logPartBytes, maxBytes: o.logMaxBytes, interrupt: o.interrupt });

  const rotated = pickRotatedToken(o.env ?? process.env);
  const started = Date.now();
  const [cmd, ...args] = o.command as [string, ...string[]];
  const child: ChildProcess = spawn(cmd, args, {
    env: {
      ...(o.env ?? process.env),
      SWITCHBOARD_SESSION_ID: o.sessionId,
      SWITCHBOARD_TOPIC_ID: o.topicId,
      SWITCHBOARD_STEP: step,
      SWITCHBOARD_MAX_TURNS: String(maxTurns),
      SWITCHBOARD_SUMMARY_FILE: summaryFile,
      ...(rotated ? { CLAUDE_CODE_OAUTH_TOKEN: rotated.token, SWITCHBOARD_TOKEN_INDEX: rotated.index } : {}),
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so an interrupt stops the agent's children too
  });
  // Decoded as streams: a character split across two chunks must not become U+FFFD.
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  const lines = new UsageLines(usage);
  child.stdout?.on("data", (text: string) => {
    out(text);
    log.append(text);
    lines.push(text);
  });
  child.stderr?.on("data", (text: string) => {
    out(text);
    log.append(text);
  });
  const timer = setInterval(() => void log.sync(), o.logUploadMs ?? 5000);
  let interrupted = false;
  let escalation: NodeJS.Timeout | undefined;
  const killGroup = (signal: NodeJS.Signals) => child.pid !== undefined && signalGroup(child.pid, signal);
  const onInterrupt = () => {
    interrupted = true;
    killGroup("SIGTERM");
    // An agent that ignores SIGTERM would keep the runner (and its slot) forever.
    escalation = setTimeout(() => killGroup("SIGKILL"), o.killGraceMs ?? 10_000);
  };
  const onForce = () => killGroup("SIGKILL");
  o.interrupt?.addEventListener("abort", onInterrupt, { once: true });
  o.forceKill?.addEventListener("abort", onForce, { once: true });
  if (o.interrupt?.aborted) onInterrupt();

  const exit = await agentExit(child);
  // The step's time is the agent's: taken as it exits, before the log's final upload and the
  // clean-up, which a slow workspace (or its retries) would otherwise add to it.
  const duration_ms = Date.now() - started;
  clearInterval(timer);
  clearTimeout(escalation);
  o.interrupt?.removeEventListener("abort", onInterrupt);
  o.forceKill?.removeEventListener("abort", onForce);
  lines.end();
  try {
    applySummary(usage, JSON.parse(readFileSync(summaryFile, "utf8")));
  } catch {
    // No summary file: the JSON lines are the report.
  }
  rmSync(dir, { recursive: true, force: true });
  await log.finish();

  try {
    await report(event("usage.reported", { step, tools: [...usage.tools.values()], turns: usage.turns, cost_usd: usage.cost_usd }));
  } catch (e) {
    // A refused report must not keep the step from ending (it would show running for good),
    // nor, after a Ctrl-C, one that failed or was stopped: the step's end is still reported.
    if (o.interrupt?.aborted) out(`[switchboard] the step's usage was not reported after the interrupt (${e instanceof Error ? e.message : String(e)})\n`);
    else if (!(e instanceof HttpError) || e.status >= 500) throw e;
    else out(`[switchboard] the step's usage was refused (${e.message}); reporting its end without it\n`);
  }
  const base = { step, turns: usage.turns, max_turns: maxTurns, cost_usd: usage.cost_usd, duration_ms };
  if (!interrupted && exit.code === 0) {
    const completed = event("step_completed", { step, turns: usage.turns, cost_usd: usage.cost_usd, duration_ms });
    if (o.interrupt?.aborted) await reportInterrupted(completed);
    else await sendEnd(completed);
    return { ...base, status: "completed" };
  }
  const error = interrupted ? "interrupted" : exit.error ? `could not start: ${exit.error}` : exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
  // Said at once, on stderr: the summary comes only after the run, and stdout may be piped away.
  if (!interrupted) (o.err ?? ((t: string) => process.stderr.write(t)))(`[switchboard] ${step} failed: ${error}\n`);
  // Its own turns and cost, as a completion carries them: the server shows these for the run
  // that failed, whatever other runs of the step reported.
  const failed = event("step_failed", { step, error, turns: usage.turns, cost_usd: usage.cost_usd, duration_ms });
  if (o.interrupt?.aborted) await reportInterrupted(failed);
  else await sendEnd(failed);
  return { ...base, status: interrupted ? "interrupted" : "failed", detail: error };
}

export function parseSteps(arg: string): Step[] | null {
  if (arg === "all") return [...STEPS];
  return (STEPS as readonly string[]).includes(arg) ? [arg as Step] : null;
}
