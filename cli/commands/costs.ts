import { Option } from "commander";
import { apiFor } from "../api";
import type { CostGroup } from "../api-types";
import { loadConfig } from "../config";
import { action, type CliCommand } from "../context";
import { UsageError } from "../errors";
import { positiveInt } from "../options";
import { count, printable, printJson, renderTable, usd } from "../output";
import { formatDuration } from "../summary-table";

/** What GET /v1/costs groups by (src/db/costs.ts COST_GROUPS). */
const GROUPS = ["day", "role", "worker", "task"] as const;
type Group = (typeof GROUPS)[number];

/** A UTC calendar day, checked as the API checks it (src/routes/costs.ts): 2026-02-30 is refused, not rolled over. */
function utcDay(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(`${value}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value) || Number.isNaN(t) || !new Date(t).toISOString().startsWith(value)) {
    throw new UsageError(`${flag} ${printable(value)} is not a calendar day`, `give a UTC day as YYYY-MM-DD, e.g. ${flag} ${new Date().toISOString().slice(0, 10)}`);
  }
  return value;
}

interface CostsOptions {
  by: Group;
  day?: string;
  from?: string;
  to?: string;
  limit: number;
  json?: boolean;
}

/** `switchboard costs [--by day|role|worker|task] [--day D | --from D --to D] [--limit N] [--json]`. */
export const costsCommand: CliCommand = {
  name: "costs",
  register(program, ctx) {
    program
      .command("costs")
      .summary("what the tasks cost, by day, role, worker or task")
      .description(
        "Cost, tokens, agent time and how many tasks, summed by UTC day (the default), role, worker or task, in key order (GET /v1/costs), with the total under the table. Each attempt counts on the day it reported and to the worker that ran it.",
      )
      .addOption(new Option("--by <group>", "sum by this").choices(GROUPS).default("day"))
      .option("--day <YYYY-MM-DD>", "only this UTC day (the same as --from D --to D)")
      .option("--from <YYYY-MM-DD>", "from this UTC day (included)")
      .option("--to <YYYY-MM-DD>", "to this UTC day (included)")
      .option("-n, --limit <n>", "at most this many groups", positiveInt(10_000), 1000)
      .option("--json", `print {"items": [...], "next_cursor": …} as the API gives it`)
      .action(
        action(ctx, async (opts: CostsOptions) => {
          if (opts.day !== undefined && (opts.from !== undefined || opts.to !== undefined)) throw new UsageError("give --day, or --from and --to, not both", "--day D is --from D --to D");
          const from = utcDay("--from", opts.from) ?? utcDay("--day", opts.day);
          const to = utcDay("--to", opts.to) ?? opts.day;
          if (from && to && from > to) throw new UsageError(`--from ${from} is after --to ${to}`);
          const api = apiFor(loadConfig(ctx.env));
          const page = await api.upTo<CostGroup>("/v1/costs", { by: opts.by, from, to }, opts.limit);
          if (opts.json) {
            printJson(ctx.out, page);
            return 0;
          }
          const c = ctx.color;
          const span = opts.day ? ` on ${opts.day}` : `${from ? ` from ${from}` : ""}${to ? ` to ${to}` : ""}`;
          if (page.items.length === 0) {
            ctx.out(`${c.dim(`no costs reported${span}`)}\n`);
            return 0;
          }
          const rows = page.items.map((g) => [printable(g.key), usd(g.cost_usd), count(g.tokens), formatDuration(g.duration_ms), String(g.tasks)]);
          ctx.out(`${renderTable(c, [opts.by, "cost", "tokens", "agent time", "tasks"], rows)}\n`);
          if (page.next_cursor) {
            ctx.err(c.dim(`more than ${page.items.length} groups: raise --limit, or narrow with --day or --from and --to\n`));
            return 0;
          }
          // A task may count in several days, roles or workers: only the sums add up.
          const sum = (f: (g: CostGroup) => number) => page.items.reduce((n, g) => n + f(g), 0);
          ctx.out(`total${span}: ${usd(sum((g) => g.cost_usd))}, ${count(sum((g) => g.tokens))} tokens, ${formatDuration(sum((g) => g.duration_ms))} of agent time\n`);
          return 0;
        }),
      );
  },
};
