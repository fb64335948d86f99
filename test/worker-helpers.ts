import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { WorkerResponse } from "../src/lib/task-schemas";
import type { TaskResponse } from "../src/lib/task-schemas";
import { call } from "./helpers";
import { leaseCall } from "./task-helpers";

/** Changes the team's settings (operator key). */
export async function setTeam(operatorKey: string, patch: { max_running?: Record<string, number | null> | null; daily_budget_usd?: number | null }) {
  const res = await call("/v1/team", { method: "PATCH", key: operatorKey, json: patch });
  const text = await res.text();
  expect(res.status, text).toBe(200);
}

export async function workerHeartbeat(key: string, wid: string, body: Record<string, unknown>): Promise<WorkerResponse> {
  const res = await call(`/v1/workers/${wid}/heartbeat`, { method: "POST", key, json: body });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as WorkerResponse;
}

export async function getWorker(key: string, wid: string): Promise<WorkerResponse> {
  const res = await call(`/v1/workers/${wid}`, { key });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as WorkerResponse;
}

/** Ends a held task with a reported cost (200 expected). */
export async function finish(key: string, id: string, leaseId: string, action: "complete" | "fail", usage: { cost_usd?: number; tokens?: number; duration_ms?: number } = {}) {
  const res = await leaseCall(key, id, action, { lease_id: leaseId, ...usage });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as TaskResponse;
}

/** Rewrites a column of rows straight in D1, as if time had passed. */
export async function rewrite(table: "tasks" | "workers", column: string, value: string, where: { id: string }) {
  await env.DB.prepare(`UPDATE ${table} SET ${column} = ? WHERE id = ?`).bind(value, where.id).run();
}

export const isoDaysAgo = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();

/** Dates what a task's attempts reported spending on `day` (YYYY-MM-DD), as if they had ended then. */
export async function redateCosts(taskId: string, day: string) {
  await env.DB.prepare("UPDATE task_costs SET day = ?, reported_at = ? WHERE task_id = ?").bind(day, `${day}T12:00:00.000Z`, taskId).run();
}
