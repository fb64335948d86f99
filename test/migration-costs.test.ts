import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

type Migration = { name: string; queries: string[] };
const migrations = (env as unknown as { TEST_MIGRATIONS: Migration[] }).TEST_MIGRATIONS;

describe("migration 0009: the cost ledger's backfill of what tasks spent before it", () => {
  it("dates a completed or failed task by its end, and anything else by its last change but never today", async () => {
    const backfill = migrations.find((m) => m.name.startsWith("0009"))?.queries.find((q) => q.includes("INSERT INTO `task_costs`"));
    expect(backfill).toBeDefined();
    const team = `team_mig_${crypto.randomUUID().slice(0, 8)}`;
    const today = new Date().toISOString();
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const rows: [string, string, string | null, string, number][] = [
      // id, status, completed_at, updated_at, cost
      ["done-today", "completed", today, today, 1],
      ["failed-old", "failed", "2026-01-05T10:00:00.000Z", "2026-01-05T10:00:00.000Z", 2],
      ["queued-today", "pending", null, today, 4],
      ["running-old", "running", null, "2026-02-01T09:00:00.000Z", 8],
      ["cancelled-today", "cancelled", today, today, 16],
      ["free", "completed", today, today, 0],
    ];
    for (const [id, status, completedAt, updatedAt, cost] of rows) {
      await env.DB.prepare(
        "INSERT INTO tasks (team_id, id, title, role, priority, depends_on, status, available_at, source, worker_id, cost_usd, created_at, updated_at, completed_at) VALUES (?, ?, ?, 'executor', 2, '[]', ?, ?, 'manual', 'w1', ?, ?, ?, ?)",
      )
        .bind(team, id, id, status, updatedAt, cost, updatedAt, updatedAt, completedAt)
        .run();
    }
    await env.DB.prepare(backfill as string).run();
    const got = (await env.DB.prepare("SELECT task_id, id, day, cost_usd, worker_id FROM task_costs WHERE team_id = ? ORDER BY task_id").bind(team).all()).results;
    expect(got).toEqual([
      { task_id: "cancelled-today", id: "cancelled-today:legacy", day: yesterday, cost_usd: 16, worker_id: "w1" },
      { task_id: "done-today", id: "done-today:legacy", day: today.slice(0, 10), cost_usd: 1, worker_id: "w1" },
      { task_id: "failed-old", id: "failed-old:legacy", day: "2026-01-05", cost_usd: 2, worker_id: "w1" },
      { task_id: "queued-today", id: "queued-today:legacy", day: yesterday, cost_usd: 4, worker_id: "w1" },
      { task_id: "running-old", id: "running-old:legacy", day: "2026-02-01", cost_usd: 8, worker_id: "w1" },
    ]);
  });
});

describe("migration 0010: the claims holding a lease when it runs are remembered", () => {
  it("a task leased before the migration has its attempt, so a late report's spend still counts", async () => {
    const backfill = migrations.find((m) => m.name.startsWith("0010"))?.queries.find((q) => q.includes("INSERT INTO `task_attempts`"));
    expect(backfill).toBeDefined();
    const team = `team_mig_${crypto.randomUUID().slice(0, 8)}`;
    const now = new Date().toISOString();
    const rows: [string, string, string | null][] = [
      ["leased", "running", "lease_a"],
      ["queued", "pending", null],
    ];
    for (const [id, status, lease] of rows) {
      await env.DB.prepare(
        "INSERT INTO tasks (team_id, id, title, role, priority, depends_on, status, available_at, source, worker_id, lease_id, lease_expires_at, claimed_at, created_at, updated_at) VALUES (?, ?, ?, 'executor', 2, '[]', ?, ?, 'manual', ?, ?, ?, ?, ?, ?)",
      )
        .bind(team, id, id, status, now, lease ? "w1" : null, lease, lease ? now : null, lease ? now : null, now, now)
        .run();
    }
    await env.DB.prepare(backfill as string).run();
    const got = (await env.DB.prepare("SELECT task_id, lease_id, worker_id, role, claimed_at FROM task_attempts WHERE team_id = ?").bind(team).all()).results;
    expect(got).toEqual([{ task_id: "leased", lease_id: "lease_a", worker_id: "w1", role: "executor", claimed_at: now }]);
  });
});
