import Table from "cli-table3";

export interface StepOutcome {
  step: string;
  status: "completed" | "failed" | "interrupted" | "skipped";
  turns: number;
  max_turns: number;
  cost_usd: number;
  duration_ms: number;
  /** Why the step did not complete ("exit code 3", "killed by SIGKILL", "could not start: …"). */
  detail?: string;
}

/** The seed's timing summary: step, status, turns/budget, cost, duration, and a total row; below it, why each step that failed did. */
export function renderSummary(outcomes: StepOutcome[]): string {
  const table = new Table({ head: ["step", "status", "turns/budget", "cost", "duration"], style: { head: [], border: [] } });
  for (const o of outcomes) table.push([o.step, o.status, `${o.turns}/${o.max_turns}`, `$${o.cost_usd.toFixed(4)}`, formatDuration(o.duration_ms)]);
  // A skipped step never ran: its budget is not part of what the run had to spend.
  const total = outcomes.reduce(
    (a, o) => ({ turns: a.turns + o.turns, budget: a.budget + (o.status === "skipped" ? 0 : o.max_turns), cost: a.cost + o.cost_usd, ms: a.ms + o.duration_ms }),
    { turns: 0, budget: 0, cost: 0, ms: 0 },
  );
  table.push(["total", "", `${total.turns}/${total.budget}`, `$${total.cost.toFixed(4)}`, formatDuration(total.ms)]);
  // Why a step failed, under the table: a reason can be long (a path, a spawn error), a column would wrap.
  const reasons = outcomes.filter((o) => o.detail && o.detail !== o.status).map((o) => `${o.step} ${o.status}: ${o.detail}`);
  return [table.toString(), ...reasons].join("\n");
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(s % 60).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
