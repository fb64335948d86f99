import { type Priority, ROLE_PATTERN } from "../../src/domain/tasks";

/**
 * The seed's task-spec Markdown, as a planner agent writes it to `outputs/tasks/*.md`:
 *
 * ```md
 * # Task: Add the login endpoint
 *
 * **Component**: backend
 * **Priority**: high
 * **Depends On**: Create the users table, task_abc123
 *
 * ## Description
 * …
 *
 * ## Acceptance Criteria
 * - [ ] …
 * ```
 *
 * The title may be at any heading level and numbered (`## Task 1: x`). The fields may also be
 * written `**Component:** x`, as list items (`- **Priority**: high`), with their value as a
 * list below them, or as `## Component` / `## Priority` / `## Depends On` sections;
 * `**Role**` names a role outright. Nothing inside a fenced code block is a title or field.
 * Parsing is pure: no file or network access.
 */
export interface TaskSpec {
  title: string;
  component: string | null;
  role: string;
  priority: Priority;
  /** As written: titles of other specs, their file names, or task ids. */
  dependsOn: string[];
  /** The spec's own Description section, or the body without the fields when it has none. */
  description: string;
  acceptanceCriteria: string[];
  /** Everything after the title line, as written: what the task's description becomes. */
  body: string;
  warnings: string[];
}

export type ParseResult = { ok: true; spec: TaskSpec } | { ok: false; error: string };

const FIELDS = ["component", "priority", "depends on", "role"] as const;
type Field = (typeof FIELDS)[number];
const NONE = new Set(["", "none", "n/a", "na", "-", "—", "–", "nothing", "no dependencies", "[]"]);

export function parseTaskSpec(markdown: string): ParseResult {
  const lines = markdown.replace(/\r\n?/g, "\n").split("\n");
  const fenced = fencedLines(lines);
  const titleAt = lines.findIndex((l, i) => !fenced[i] && TITLE.test(l.trim()));
  if (titleAt < 0) return { ok: false, error: "no `# Task: <title>` line" };
  // Planners bold or code-quote the title now and then (`# Task: **Add login**`); the mark-up is not part of it.
  const title = unwrap((lines[titleAt] as string).trim().replace(TITLE, "").trim());
  if (!title) return { ok: false, error: "the `# Task:` line has no title" };
  if (title.length > 500) return { ok: false, error: "the title is longer than 500 characters" };

  const rest = lines.slice(titleAt + 1);
  const restFenced = fenced.slice(titleAt + 1);
  const fields = new Map<Field, string[]>();
  const sections = new Map<string, string[]>();
  const loose: string[] = []; // body lines outside any field or named section
  let section: string | null = null;
  for (let i = 0; i < rest.length; i++) {
    const line = rest[i] as string;
    // Inside a code block (an example in the description) nothing is a heading or a field.
    if (restFenced[i]) {
      if (section !== null) (sections.get(section) as string[]).push(line);
      else loose.push(line);
      continue;
    }
    const heading = HEADING.exec(line.trim());
    if (heading) {
      const name = normalize(heading[1] as string);
      section = name;
      if (!sections.has(name)) sections.set(name, []);
      continue;
    }
    const field = inlineField(line);
    if (field) {
      // A field with nothing after the colon takes the list items below it, blank lines
      // before and between them allowed (planners often leave one), up to anything else:
      // a paragraph, a heading, another field or a code block.
      const items: string[] = [];
      if (field.value === "") {
        for (let j = i + 1; j < rest.length; j++) {
          const next = rest[j] as string;
          if (next.trim() === "") continue;
          if (restFenced[j] || !LIST_ITEM.test(next) || inlineField(next) || HEADING.test(next.trim())) break;
          items.push(listItem(next));
          i = j;
        }
      }
      fields.set(field.name, [...(fields.get(field.name) ?? []), ...(items.length > 0 ? items : [field.value])]);
      continue;
    }
    if (section !== null) (sections.get(section) as string[]).push(line);
    else loose.push(line);
  }
  // `## Priority` style sections count as fields.
  for (const name of FIELDS) {
    const body = sections.get(name);
    if (!body || fields.has(name)) continue;
    const items = body.map((l) => l.trim()).filter((l) => l !== "");
    fields.set(name, name === "depends on" ? items.map(listItem) : [items[0] ?? ""]);
  }

  const warnings: string[] = [];
  const component = fieldText(fields, "component");
  const role = roleOf(fieldText(fields, "role"), component, warnings);
  const priority = priorityOf(fieldText(fields, "priority"), warnings);
  const dependsOn = [...new Set((fields.get("depends on") ?? []).flatMap(splitReferences))];
  const description = (sections.get("description") ?? loose).join("\n").trim();
  const criteriaLines = sections.get("acceptance criteria") ?? [];
  const acceptanceCriteria = criteriaLines.filter((l) => LIST_ITEM.test(l)).map(listItem).filter((l) => l !== "");
  const body = rest.join("\n").trim();
  return { ok: true, spec: { title, component, role, priority, dependsOn, description, acceptanceCriteria, body, warnings } };
}

/** `**x**`, `_x_`, `` `x` `` (nested too) → `x`; only a matching pair: `` `npm ci` in CI `` stays. */
function unwrap(text: string): string {
  for (;;) {
    const m = /^(\*\*|__|\*|_|`)(.+)\1$/.exec(text);
    if (!m) return text;
    text = (m[2] as string).trim();
  }
}

/** `# Task: x`, at any heading level, with a number or id before the colon (`## Task 1: x`, `# Task T-2: x`). */
const TITLE = /^#{1,6}\s+Task(?:\s+[\w.#-]+)?\s*:\s*/i;
const HEADING = /^#{2,6}\s+(.+?)\s*:?\s*$/;
const LIST_ITEM = /^\s*([-*+]|\d+[.)])\s+/;

/**
 * For each line, whether it is inside a fenced code block (or is one of its fences): a run
 * of three or more ` or ~ opens one, closed by a run of the same character at least as long
 * with nothing after it; an unclosed block runs to the end, as in CommonMark.
 */
function fencedLines(lines: string[]): boolean[] {
  const out: boolean[] = [];
  let open: { char: string; length: number } | null = null;
  for (const line of lines) {
    const fence = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
    if (open === null) {
      // A backtick fence's info string may not hold a backtick (that is inline code).
      if (fence && !(fence[1]?.startsWith("`") && (fence[2] as string).includes("`"))) {
        open = { char: (fence[1] as string)[0] as string, length: (fence[1] as string).length };
        out.push(true);
      } else out.push(false);
      continue;
    }
    out.push(true);
    if (fence && (fence[1] as string)[0] === open.char && (fence[1] as string).length >= open.length && (fence[2] as string).trim() === "") open = null;
  }
  return out;
}

function normalize(text: string): string {
  return text.replace(/[*_`]/g, "").trim().toLowerCase().replace(/\s+/g, " ");
}

/** `**Name**: value`, `**Name:** value` or `- **Name**: value`, for the known names. */
function inlineField(line: string): { name: Field; value: string } | null {
  const m = /^\s*(?:[-*+]\s+)?\*\*([^*]+?)\s*(?::\s*\*\*|\*\*\s*:)\s*(.*)$/.exec(line);
  if (!m) return null;
  const name = normalize(m[1] as string).replace(/^depends$/, "depends on").replace(/^dependencies$/, "depends on");
  if (!(FIELDS as readonly string[]).includes(name)) return null;
  return { name: name as Field, value: (m[2] as string).trim() };
}

function listItem(line: string): string {
  return line.replace(/^\s*([-*+]|\d+[.)])\s+(\[[ xX]\]\s+)?/, "").trim();
}

function fieldText(fields: Map<Field, string[]>, name: Field): string | null {
  const value = fields.get(name)?.[0]?.replace(/[*_`]/g, "").trim();
  return value ? value : null;
}

/**
 * `a, b; c` → references, each without Markdown around it; `None` → nothing. A reference
 * with more than one way to find it is `first|second|…`, tried in that order: as written,
 * then without a `Task 1:` before it, then a file name in `[Title](file.md)` or
 * `Title (file.md)`.
 */
export function splitReferences(value: string): string[] {
  if (isNone(value)) return [];
  return value
    .split(/[,;]/)
    .map(reference)
    .filter((r) => r !== "" && !isNone(r));
}

/** One reference as `first|second|…` (see splitReferences); the first is always the reference as written. */
function reference(part: string): string {
  const link = /^\s*\[([^\]]+)\]\(([^)]+)\)\s*$/.exec(part);
  const written = clean(link ? (link[1] as string) : part);
  const candidates = [written];
  // Planners number their specs: `Task 1: Setup DB` (or `# Task: Setup DB`) names the spec titled `Setup DB`.
  const unnumbered = written.replace(/^#*\s*Task(?:\s+[\w.#-]+)?\s*:\s*/i, "");
  candidates.push(unnumbered);
  // `Setup DB (01-setup.md)`: the title without the file, then the file.
  const withFile = /^(.+?)\s*\(\s*`?([^()`\s|]+\.md)`?\s*\)$/i.exec(unnumbered);
  if (withFile) candidates.push(clean(withFile[1] as string), withFile[2] as string);
  if (link) candidates.push(clean(link[2] as string));
  return [...new Set(candidates.filter((c) => c !== ""))].join("|");
}

function clean(reference: string): string {
  return reference.trim().replace(/^["'`*_]+|["'`*_.]+$/g, "").trim();
}

/**
 * No dependencies: empty, a dash, `N/A`, `[]`, …, or anything whose first word is "none"
 * (`None.`, `None (this is the first task)`), however a planner words it.
 */
function isNone(value: string): boolean {
  const v = value.replace(/[*_`]/g, "").trim().toLowerCase();
  return NONE.has(v) || /^none\b/.test(v);
}

/**
 * The role the task goes to: `**Role**` when it names one; else from the component
 * (`docs`/`documentation` → documentation, `planning`/`planner` → planner); else executor.
 * Components such as `backend` or `api` name parts of the code, not workers.
 */
export function roleOf(role: string | null, component: string | null, warnings: string[] = []): string {
  if (role) {
    const r = role.toLowerCase();
    if (ROLE_PATTERN.test(r)) return r;
    warnings.push(`role "${role}" is not a role name; using the component`);
  }
  const c = (component ?? "").toLowerCase();
  if (/\bdoc(s|umentation)?\b/.test(c)) return "documentation";
  if (/\bplan(ner|ning)?\b/.test(c)) return "planner";
  return "executor";
}

const PRIORITY_WORDS: Record<string, Priority> = {
  critical: "critical",
  urgent: "critical",
  blocker: "critical",
  highest: "critical",
  p0: "critical",
  high: "high",
  important: "high",
  p1: "high",
  medium: "normal",
  normal: "normal",
  moderate: "normal",
  default: "normal",
  p2: "normal",
  low: "low",
  lowest: "low",
  minor: "low",
  p3: "low",
  p4: "low",
};

/** The spec's priority word (its first word: `High (blocks the release)` is high); unknown → normal. */
export function priorityOf(value: string | null, warnings: string[] = []): Priority {
  if (!value) return "normal";
  const word = (/[a-z0-9]+/i.exec(value)?.[0] ?? "").toLowerCase();
  const priority = PRIORITY_WORDS[word];
  if (priority) return priority;
  warnings.push(`unknown priority "${value}"; using normal`);
  return "normal";
}

export interface SpecFile {
  file: string;
  spec: TaskSpec;
}

export type Dependency = { kind: "task"; id: string } | { kind: "spec"; file: string };

export interface PlannedSpec extends SpecFile {
  dependencies: Dependency[];
}

export interface SpecPlan {
  /** In an order where every spec comes after the specs it depends on. */
  ordered: PlannedSpec[];
  rejected: Array<{ file: string; reason: string }>;
}

const TASK_ID = /^task_[A-Za-z0-9._-]+$/;

/**
 * Resolves each spec's `Depends On` and orders the specs so dependencies are created first.
 * A reference is a task id (`task_…`, used as is), another spec's title (case and spacing
 * ignored), or another spec's file name (with or without `.md`). A spec is rejected, never
 * created without what it needs, when a reference matches nothing, is ambiguous, names
 * itself, or belongs to a cycle, and so is every spec that depends on a rejected one.
 */
export function planSpecs(files: SpecFile[]): SpecPlan {
  const byTitle = new Map<string, string[]>();
  const byFile = new Map<string, string>();
  for (const { file, spec } of files) {
    const key = normalize(spec.title);
    byTitle.set(key, [...(byTitle.get(key) ?? []), file]);
    byFile.set(file.toLowerCase(), file);
    byFile.set(file.toLowerCase().replace(/\.md$/, ""), file);
  }
  const rejected = new Map<string, string>();
  const deps = new Map<string, Dependency[]>();
  for (const { file, spec } of files) {
    const list: Dependency[] = [];
    for (const ref of joinSplitTitles(spec.dependsOn, byTitle)) {
      const found = resolve(ref, byTitle, byFile);
      if (typeof found === "string") {
        rejected.set(file, found);
        break;
      }
      if (found.kind === "spec" && found.file === file) {
        rejected.set(file, `it depends on itself ("${ref}")`);
        break;
      }
      if (!list.some((d) => JSON.stringify(d) === JSON.stringify(found))) list.push(found);
    }
    deps.set(file, list);
  }

  // Kahn's order over the specs; what is left at the end is on or behind a cycle.
  const ordered: PlannedSpec[] = [];
  const placed = new Set<string>();
  let progress = true;
  while (progress) {
    progress = false;
    for (const { file, spec } of files) {
      if (placed.has(file) || rejected.has(file)) continue;
      const mine = deps.get(file) as Dependency[];
      const blocker = mine.find((d) => d.kind === "spec" && rejected.has(d.file));
      if (blocker && blocker.kind === "spec") {
        rejected.set(file, `it depends on ${blocker.file}, which was not created`);
        progress = true;
        continue;
      }
      if (mine.every((d) => d.kind === "task" || placed.has(d.file))) {
        ordered.push({ file, spec, dependencies: mine });
        placed.add(file);
        progress = true;
      }
    }
  }
  for (const { file } of files) {
    if (!placed.has(file) && !rejected.has(file)) rejected.set(file, "its dependencies form a cycle");
  }
  return { ordered, rejected: files.filter((f) => rejected.has(f.file)).map((f) => ({ file: f.file, reason: rejected.get(f.file) as string })) };
}

/**
 * References were split at commas, but a title may hold one ("Parse CSV, JSON files"): the
 * longest run of neighbouring parts that, joined again with ", ", is a spec's title is one
 * reference. The run is joined as written and read again as one reference, so a `Task 1:` or
 * `# Task:` before it and a `(file.md)` after it are taken off the whole title, not the
 * part they were written on.
 */
function joinSplitTitles(refs: string[], byTitle: Map<string, string[]>): string[] {
  const written = refs.map((r) => r.split("|")[0] as string);
  const out: string[] = [];
  for (let i = 0; i < refs.length; ) {
    let joined = refs[i] as string;
    let end = i + 1;
    for (let j = refs.length; j > i + 1; j--) {
      const ref = reference(written.slice(i, j).join(", "));
      if (ref.split("|").some((c) => byTitle.has(normalize(c)))) {
        joined = ref;
        end = j;
        break;
      }
    }
    out.push(joined);
    i = end;
  }
  return out;
}

function resolve(ref: string, byTitle: Map<string, string[]>, byFile: Map<string, string>): Dependency | string {
  const candidates = ref.includes("|") ? ref.split("|") : [ref];
  for (const candidate of candidates) {
    const c = candidate.trim();
    if (TASK_ID.test(c)) return { kind: "task", id: c };
    const titled = byTitle.get(normalize(c));
    if (titled && titled.length > 1) return `"${c}" is the title of more than one spec (${titled.join(", ")})`;
    if (titled) return { kind: "spec", file: titled[0] as string };
    const named = byFile.get(c.toLowerCase().replace(/^(\.\/)?(outputs\/)?(tasks\/)?/, ""));
    if (named) return { kind: "spec", file: named };
  }
  return `"${candidates[0]}" is neither a task id nor the title or file of another spec`;
}
