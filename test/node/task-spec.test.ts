import { describe, expect, it } from "vitest";
import { readAgentReport, addReports, head, tail } from "../../cli/worker/agent-result";
import { wholeChars } from "../../cli/output";
import { parseTaskSpec, planSpecs, priorityOf, roleOf, type SpecFile, splitReferences } from "../../cli/worker/task-spec";

const SEED = `# Task: Add the login endpoint

**Component**: Backend
**Priority**: High
**Depends On**: Create the users table, task_abc123

## Description
POST /login checks the password hash
and sets a session cookie.

## Acceptance Criteria
- [ ] a right password signs in
- [x] a wrong one is 401
1. rate limited
`;

function spec(markdown: string) {
  const r = parseTaskSpec(markdown);
  if (!r.ok) throw new Error(r.error);
  return r.spec;
}

describe("parseTaskSpec", () => {
  it("reads the seed's format", () => {
    const s = spec(SEED);
    expect(s).toMatchObject({
      title: "Add the login endpoint",
      component: "Backend",
      role: "executor",
      priority: "high",
      dependsOn: ["Create the users table", "task_abc123"],
      description: "POST /login checks the password hash\nand sets a session cookie.",
      acceptanceCriteria: ["a right password signs in", "a wrong one is 401", "rate limited"],
      warnings: [],
    });
    expect(s.body.startsWith("**Component**: Backend")).toBe(true);
    expect(s.body).toContain("## Acceptance Criteria");
  });

  it("takes the field variants: colon inside the bold, list items, sections, a dependency list", () => {
    const s = spec(`Some preamble.\n\n#  Task:   Write the docs  \n\n- **Component:** Documentation\n- **Priority:** p0\n- **Depends On:**\n  - API endpoint\n  - \`02-schema.md\`\n\nJust a body without sections.\n`);
    expect(s).toMatchObject({ title: "Write the docs", component: "Documentation", role: "documentation", priority: "critical", dependsOn: ["API endpoint", "02-schema.md"], description: "Just a body without sections.", acceptanceCriteria: [] });

    const sections = spec(`# Task: Plan more\n\n## Component\nplanning\n\n## Priority\nLow — later\n\n## Depends On\n- None\n\n## Description\nx\n`);
    expect(sections).toMatchObject({ role: "planner", priority: "low", dependsOn: [], description: "x" });

    expect(spec("# Task: t\n**Role**: Reviewer\n**Component**: docs\n").role).toBe("reviewer");
    expect(spec("# task: lower case\n").title).toBe("lower case");
    expect(spec("# Task: t\n**Depends On**: none\n").dependsOn).toEqual([]);
    expect(spec("# Task: t\r\n**Priority**: LOW\r\n").priority).toBe("low");
  });

  it("defaults what is missing and warns about what it cannot read", () => {
    const s = spec("# Task: Only a title");
    expect(s).toMatchObject({ component: null, role: "executor", priority: "normal", dependsOn: [], description: "", body: "" });
    expect(spec("# Task: t\n**Priority**: whenever\n")).toMatchObject({ priority: "normal", warnings: ['unknown priority "whenever"; using normal'] });
    expect(spec("# Task: t\n**Role**: Not A Role!\n").warnings[0]).toMatch(/not a role name/);
  });

  it("takes a field's list after a blank line, up to the next heading, field or paragraph", () => {
    const s = spec("# Task: Build the API\n\n**Component**: backend\n**Priority**: normal\n**Depends On**:\n\n- Set up the database\n\n- task_abc\n\n## Description\nEndpoints.\n");
    expect(s).toMatchObject({ component: "backend", priority: "normal", dependsOn: ["Set up the database", "task_abc"], description: "Endpoints." });
    // Any field: its first item is its value. A list field stops at the next field, even one written as a list item.
    expect(spec("# Task: t\n**Priority**:\n\n- high\n")).toMatchObject({ priority: "high", warnings: [] });
    expect(spec("# Task: t\n- **Depends On**:\n\n  - A\n- **Priority**: low\n- not a field\n")).toMatchObject({ dependsOn: ["A"], priority: "low", description: "- not a field" });
    // A paragraph after the blank line is the body, not the field's value.
    expect(spec("# Task: t\n**Depends On**:\n\nSome text.\n- a list of the body\n")).toMatchObject({ dependsOn: [], description: "Some text.\n- a list of the body" });
  });

  it("takes planners' other title lines", () => {
    expect(spec("# Task 1: Setup DB\n").title).toBe("Setup DB");
    expect(spec("## Task: Setup DB\n").title).toBe("Setup DB");
    expect(spec("### Task T-2.1: Setup DB\n").title).toBe("Setup DB");
    expect(spec("# Task #3: Setup DB\n").title).toBe("Setup DB");
    expect(spec("# Task: **Add login**\n").title).toBe("Add login");
    expect(spec("# Task: *`Add login`*\n").title).toBe("Add login");
    expect(spec("# Task: `npm ci` in CI\n").title).toBe("`npm ci` in CI");
    expect(spec("# Task: _Add_login_\n").title).toBe("Add_login");
  });

  it("does not read headings or fields inside a fenced code block", () => {
    const md = "# Task: t\n**Priority**: low\n\n## Description\nWrite specs like this:\n\n```md\n## Priority\ncritical\n**Depends On**: Other\n```\n\n~~~\n# Task: not this\n**Role**: reviewer\n~~~\nThe end.\n";
    const s = spec(md);
    expect(s).toMatchObject({ title: "t", priority: "low", role: "executor", dependsOn: [] });
    expect(s.description).toBe("Write specs like this:\n\n```md\n## Priority\ncritical\n**Depends On**: Other\n```\n\n~~~\n# Task: not this\n**Role**: reviewer\n~~~\nThe end.");
    // Nor a title inside one; a fence is closed only by a run of the same character at least as long.
    expect(spec("````\n# Task: example\n```\n````\n# Task: real\n").title).toBe("real");
    expect(parseTaskSpec("```\n# Task: only an example\n```\n")).toEqual({ ok: false, error: "no `# Task: <title>` line" });
  });

  it("refuses a file without a title", () => {
    expect(parseTaskSpec("Task: not a heading\n")).toEqual({ ok: false, error: "no `# Task: <title>` line" });
    expect(parseTaskSpec("# Tasks: a list\n")).toEqual({ ok: false, error: "no `# Task: <title>` line" });
    expect(parseTaskSpec("# Task:   \n")).toEqual({ ok: false, error: "the `# Task:` line has no title" });
    expect(parseTaskSpec(`# Task: ${"x".repeat(501)}`)).toMatchObject({ ok: false });
  });
});

describe("field mappings", () => {
  it("priorities", () => {
    expect(["Critical", "urgent", "P0", "high", "P1", "Medium", "normal", "p2", "low", "minor", "P3"].map((p) => priorityOf(p))).toEqual(["critical", "critical", "critical", "high", "high", "normal", "normal", "normal", "low", "low", "low"]);
    expect(priorityOf(null)).toBe("normal");
  });
  it("roles from components", () => {
    expect(roleOf(null, "Docs")).toBe("documentation");
    expect(roleOf(null, "API documentation")).toBe("documentation");
    expect(roleOf(null, "backend")).toBe("executor");
    expect(roleOf(null, "dockerfile")).toBe("executor");
    expect(roleOf(null, null)).toBe("executor");
    expect(roleOf("executor", "docs")).toBe("executor");
  });
  it("references", () => {
    expect(splitReferences("A, `b`; \"C\".")).toEqual(["A", "b", "C"]);
    expect(splitReferences("[The schema](01-schema.md)")).toEqual(["The schema|01-schema.md"]);
    expect(splitReferences("N/A")).toEqual([]);
    for (const none of ["None", "none.", "None (this is the first task)", "**None**", "NONE - it starts everything", "-", "N/A"]) expect(splitReferences(none)).toEqual([]);
    expect(splitReferences("Nonexistent spec")).toEqual(["Nonexistent spec"]);
    expect(splitReferences("Task 1: Setup DB")).toEqual(["Task 1: Setup DB|Setup DB"]);
    expect(splitReferences("Setup DB (01-setup.md)")).toEqual(["Setup DB (01-setup.md)|Setup DB|01-setup.md"]);
  });
});

describe("planSpecs", () => {
  const file = (name: string, title: string, deps = "None"): SpecFile => ({ file: name, spec: spec(`# Task: ${title}\n**Depends On**: ${deps}\n`) });

  it("orders specs after what they depend on, by title, file name or task id", () => {
    const plan = planSpecs([file("03-docs.md", "Docs", "api endpoint, task_xyz"), file("02-api.md", "API endpoint", "01-schema"), file("01-schema.md", "Schema")]);
    expect(plan.rejected).toEqual([]);
    expect(plan.ordered.map((p) => [p.file, p.dependencies])).toEqual([
      ["01-schema.md", []],
      ["02-api.md", [{ kind: "spec", file: "01-schema.md" }]],
      ["03-docs.md", [{ kind: "spec", file: "02-api.md" }, { kind: "task", id: "task_xyz" }]],
    ]);
  });

  it("takes planners' wording: None with a remark, `Task 1: Title`, `Title (file.md)`", () => {
    const plan = planSpecs([
      file("01-setup.md", "Setup DB", "None (this is the first task)"),
      file("02-api.md", "API", "Task 1: Setup DB"),
      file("03-ui.md", "UI", "Old name of it (02-api.md)"),
      file("04-cli.md", "Task runner: retries", "None."),
      file("05-docs.md", "Docs", "Task runner: retries; Task 9: Nothing like it"),
    ]);
    expect(plan.ordered.map((p) => [p.file, p.dependencies])).toEqual([
      ["01-setup.md", []],
      ["02-api.md", [{ kind: "spec", file: "01-setup.md" }]],
      ["03-ui.md", [{ kind: "spec", file: "02-api.md" }]],
      ["04-cli.md", []],
    ]);
    expect(plan.rejected).toEqual([{ file: "05-docs.md", reason: '"Task 9: Nothing like it" is neither a task id nor the title or file of another spec' }]);
  });

  it("a title with a comma in it is one reference, while other commas still separate", () => {
    const plan = planSpecs([file("01-parse.md", "Parse CSV, JSON files"), file("02-docs.md", "Docs"), file("03-all.md", "All", "Parse CSV, JSON files, docs")]);
    expect(plan.rejected).toEqual([]);
    expect(plan.ordered.find((p) => p.file === "03-all.md")?.dependencies).toEqual([
      { kind: "spec", file: "01-parse.md" },
      { kind: "spec", file: "02-docs.md" },
    ]);
  });

  it("a title with a comma in it is one reference with a `# Task:` or `Task 1:` before it or a `(file.md)` after it", () => {
    const forms = ["# Task: Parse CSV, JSON files", "Task 1: Parse CSV, JSON files", "Parse CSV, JSON files (01-parse.md)", "**Task 1: Parse CSV, JSON files**", "[Parse CSV, JSON files](01-parse.md)"];
    for (const deps of forms) {
      const plan = planSpecs([file("01-parse.md", "Parse CSV, JSON files"), file("02-b.md", "B", deps)]);
      expect(plan.rejected, deps).toEqual([]);
      expect(plan.ordered.find((p) => p.file === "02-b.md")?.dependencies, deps).toEqual([{ kind: "spec", file: "01-parse.md" }]);
    }
    // In a list of two, in either order and with either separator.
    const parse = { kind: "spec", file: "01-parse.md" };
    const docs = { kind: "spec", file: "02-docs.md" };
    for (const [deps, expected] of [
      ["Task 1: Parse CSV, JSON files; Task 2: Docs", [parse, docs]],
      ["Docs, Parse CSV, JSON files (01-parse.md)", [docs, parse]],
      ["# Task: Parse CSV, JSON files, 02-docs.md", [parse, docs]],
    ] as const) {
      const plan = planSpecs([file("01-parse.md", "Parse CSV, JSON files"), file("02-docs.md", "Docs"), file("03-all.md", "All", deps)]);
      expect(plan.rejected, deps).toEqual([]);
      expect(plan.ordered.find((p) => p.file === "03-all.md")?.dependencies, deps).toEqual(expected);
    }
    // A `(file.md)` after the last of two references is not read as naming the whole run.
    const plan = planSpecs([file("01-a.md", "A"), file("02-b.md", "B"), file("03-c.md", "C", "A, B (02-b.md)")]);
    expect(plan.ordered.find((p) => p.file === "03-c.md")?.dependencies).toEqual([
      { kind: "spec", file: "01-a.md" },
      { kind: "spec", file: "02-b.md" },
    ]);
  });

  it("rejects unknown, ambiguous, self and cyclic references, and what depends on a rejected spec", () => {
    const plan = planSpecs([
      file("a.md", "A", "nothing like it"),
      file("b.md", "B", "A"),
      file("c.md", "C", "D"),
      file("d.md", "D", "C"),
      file("e.md", "E", "E"),
      file("f1.md", "Same"),
      file("f2.md", "Same"),
      file("g.md", "G", "Same"),
      file("h.md", "H", "[A link](h2.md)"),
      file("h2.md", "H two"),
    ]);
    expect(plan.ordered.map((p) => p.file)).toEqual(["f1.md", "f2.md", "h2.md", "h.md"]);
    expect(Object.fromEntries(plan.rejected.map((r) => [r.file, r.reason]))).toEqual({
      "a.md": '"nothing like it" is neither a task id nor the title or file of another spec',
      "b.md": "it depends on a.md, which was not created",
      "c.md": "its dependencies form a cycle",
      "d.md": "its dependencies form a cycle",
      "e.md": 'it depends on itself ("E")',
      "g.md": '"Same" is the title of more than one spec (f1.md, f2.md)',
    });
  });
});

describe("agent reports", () => {
  it("reads claude -p --output-format json, stream-json and older cost_usd", () => {
    const json = JSON.stringify({ type: "result", is_error: false, duration_ms: 65000.4, result: "Done.", total_cost_usd: 0.42, usage: { input_tokens: 10, output_tokens: 20, cache_creation_input_tokens: 5, cache_read_input_tokens: 100 } });
    expect(readAgentReport(json)).toEqual({ cost_usd: 0.42, tokens: 135, duration_ms: 65000, result: "Done.", is_error: false });
    expect(readAgentReport(JSON.stringify(JSON.parse(json), null, 2))).toMatchObject({ cost_usd: 0.42 });
    const stream = [JSON.stringify({ type: "system" }), "chatter", JSON.stringify({ type: "result", cost_usd: 0.1, is_error: true, result: "boom" })].join("\n");
    expect(readAgentReport(stream)).toEqual({ cost_usd: 0.1, result: "boom", is_error: true });
    expect(readAgentReport("just text\n{not json}\n")).toBeNull();
    expect(readAgentReport(JSON.stringify({ cost_usd: -1 }))).toBeNull();
    // Figures past what the API takes are left out, so the completion is not refused and lost.
    expect(readAgentReport(JSON.stringify({ type: "result", is_error: false, result: "ok", total_cost_usd: 0.1, usage: { input_tokens: 1e20, output_tokens: 5 } }))).toEqual({ cost_usd: 0.1, result: "ok", is_error: false });
    expect(readAgentReport(JSON.stringify({ type: "result", total_cost_usd: 2e6, duration_ms: 1e13, result: "ok" }))).toEqual({ result: "ok" });
    expect(addReports({ tokens: 9e11 }, { tokens: 9e11 })).toMatchObject({ tokens: undefined });
  });
  it("adds runs up", () => {
    expect(addReports({ cost_usd: 0.25, duration_ms: 10 }, { cost_usd: 0.5, tokens: 3, duration_ms: 5 })).toEqual({ cost_usd: 0.75, tokens: 3, duration_ms: 15, result: undefined, is_error: undefined });
    expect(tail("a\nb\nc", 3)).toBe("[… 4 characters before]\nc");
  });
  it("never cuts an emoji in half (the API refuses a lone surrogate)", () => {
    const rocket = "🚀"; // two UTF-16 units
    expect(wholeChars(rocket.slice(0, 1))).toBe("");
    expect(wholeChars(`a${rocket}`.slice(-1))).toBe("");
    expect(wholeChars(`a${rocket}`.slice(-2))).toBe(rocket);
    expect(wholeChars(`a${rocket}b`)).toBe(`a${rocket}b`);
    const lone = /[\uD800-\uDFFF]/u;
    for (let n = 61; n < 70; n++) {
      expect(head(rocket.repeat(40), n)).not.toMatch(lone);
      expect(tail(rocket.repeat(40), n - 58)).not.toMatch(lone);
    }
  });
});
