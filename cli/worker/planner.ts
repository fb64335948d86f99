import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { wholeChars } from "../output";
import { ApiError, type WorkerApi } from "./api";
import { readFileHead } from "./file-head";
import { planSpecs, parseTaskSpec, type SpecFile } from "./task-spec";

export interface PlannedTasks {
  created: Array<{ file: string; id: string; title: string; role: string; depends_on: string[]; existed: boolean }>;
  rejected: Array<{ file: string; reason: string }>;
}

/** The spec files an agent left in `outputs/tasks/` (not its sub-folders), by name. */
export function specFiles(specsDir: string): string[] {
  if (!existsSync(specsDir)) return [];
  return readdirSync(specsDir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.toLowerCase().endsWith(".md"))
    .map((e) => e.name)
    .sort();
}

/**
 * Moves spec files left from an earlier task to `outputs/tasks/stale/`, so that the files
 * found after a run are that run's own (their idempotency keys name the task that wrote them).
 */
export function setAsideStaleSpecs(specsDir: string): string[] {
  const files = specFiles(specsDir);
  if (files.length > 0) mkdirSync(join(specsDir, "stale"), { recursive: true });
  for (const f of files) renameSync(join(specsDir, f), join(specsDir, "stale", f));
  return files;
}

/** `planner:<parent task>:<file>`: the same file of the same task never makes two tasks. */
export function plannedKey(parentTaskId: string, file: string): string {
  const key = `planner:${parentTaskId}:${file}`;
  return key.length <= 200 ? key : `planner:${parentTaskId}:${createHash("sha256").update(file).digest("hex").slice(0, 40)}`;
}

/**
 * Creates a task from each spec in `outputs/tasks/*.md`, dependencies first, and moves each
 * file to `done/` or, with a `.reason.txt` beside it, `rejected/`. A refusal of one spec (400,
 * 404) rejects it and what depends on it; a network or server failure throws, leaving the
 * files not yet created where they are (created ones are found again by their keys).
 */
export async function createPlannedTasks(api: WorkerApi, specsDir: string, parentTaskId: string): Promise<PlannedTasks> {
  const out: PlannedTasks = { created: [], rejected: [] };
  const parsed: SpecFile[] = [];
  for (const file of specFiles(specsDir)) {
    // More than a description may hold (100,000 characters, cut below), never the whole of a huge file.
    const r = parseTaskSpec(readFileHead(join(specsDir, file), 200_000));
    if (r.ok) parsed.push({ file, spec: r.spec });
    else out.rejected.push({ file, reason: r.error });
  }
  const plan = planSpecs(parsed);
  const rejectedNow = new Map(plan.rejected.map((r) => [r.file, r.reason]));
  const ids = new Map<string, string>();
  for (const { file, spec, dependencies } of plan.ordered) {
    const missing = dependencies.find((d) => d.kind === "spec" && !ids.has(d.file));
    if (missing && missing.kind === "spec") {
      rejectedNow.set(file, `it depends on ${missing.file}, which was not created`);
      continue;
    }
    const depends_on = dependencies.map((d) => (d.kind === "task" ? d.id : (ids.get(d.file) as string)));
    const description = `${spec.body}\n\n---\nPlanned by ${parentTaskId} (\`outputs/tasks/${file}\`).`;
    try {
      const { task, created } = await api.createTask({
        title: spec.title,
        description: wholeChars(description.slice(0, 100_000)),
        role: spec.role,
        priority: spec.priority,
        depends_on,
        idempotency_key: plannedKey(parentTaskId, file),
        source: "planner",
      });
      ids.set(file, task.id);
      out.created.push({ file, id: task.id, title: task.title, role: task.role, depends_on: task.depends_on, existed: !created });
      move(specsDir, file, "done");
    } catch (e) {
      if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429) rejectedNow.set(file, `refused: ${e.detail}`);
      else throw e;
    }
  }
  for (const [file, reason] of rejectedNow) out.rejected.push({ file, reason });
  for (const { file, reason } of out.rejected) {
    move(specsDir, file, "rejected");
    writeFileSync(join(specsDir, "rejected", `${file}.reason.txt`), `${reason}\n`);
  }
  return out;
}

function move(specsDir: string, file: string, to: string): void {
  mkdirSync(join(specsDir, to), { recursive: true });
  renameSync(join(specsDir, file), join(specsDir, to, file));
}

/** The planner's result gets a list of what it created, for people reading the task. */
export function describePlannedTasks(p: PlannedTasks): string {
  if (p.created.length === 0 && p.rejected.length === 0) return "";
  const lines = ["", "## Tasks created", ""];
  for (const c of p.created) lines.push(`- ${c.id} (${c.role}): ${c.title}${c.depends_on.length > 0 ? ` — after ${c.depends_on.join(", ")}` : ""}${c.existed ? " (created before)" : ""}`);
  if (p.created.length === 0) lines.push("- none");
  if (p.rejected.length > 0) {
    lines.push("", "## Specs not created", "");
    for (const r of p.rejected) lines.push(`- outputs/tasks/${r.file}: ${r.reason}`);
  }
  return lines.join("\n");
}
