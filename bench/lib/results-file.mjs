// bench/results.json and bench/RESULTS.md hold every part of the bench: the events part
// (run.mjs's systems side by side) at the top level, the claims part under `claims`. A run
// of some parts keeps the others' results from the file it replaces, so RESULTS.md is always
// rendered whole from one results.json.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderResults } from "./report.mjs";

/** The results.json in `dir`, or {} when there is none (or it does not parse: said on stderr). */
export function readResults(dir) {
  const file = join(dir, "results.json");
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    console.error(`bench: ${file} does not parse (${e.message}); the parts not run now will be missing`);
    return {};
  }
}

/** The previous results with the parts just measured put in: `events` (the top-level fields) and/or `claims`. */
export function mergeResults(previous, { events, claims }) {
  const { claims: previousClaims, ...previousEvents } = previous;
  const merged = { ...(events ?? previousEvents) };
  const c = claims ?? previousClaims;
  if (c) merged.claims = c;
  return merged;
}

/** How this run was started, for the results: the BENCH_* settings (shell-quoted where needed), then the npm script. */
export function commandLine(script) {
  const quote = (v) => (/^[\w.,:/=@%+-]*$/.test(v) ? v : `'${v.replace(/'/g, "'\\''")}'`);
  const vars = Object.entries(process.env).filter(([k]) => k.startsWith("BENCH_"));
  return `${vars.map(([k, v]) => `${k}=${quote(v)} `).join("")}npm run ${script}`;
}

export function writeResults(dir, results) {
  writeFileSync(join(dir, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(dir, "RESULTS.md"), renderResults(results));
}
