import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { LeasedTaskResponse, TaskResponse } from "../src/lib/task-schemas";
import type { CreateTask } from "../src/routes/tasks";
import { call, json } from "./helpers";

/** Creates a task and returns it (201 expected). */
export async function createTask(key: string, body: Partial<CreateTask> & { title?: string } = {}): Promise<TaskResponse> {
  const res = await call("/v1/tasks", { method: "POST", key, json: { title: "a task", role: "executor", ...body } });
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return JSON.parse(text) as TaskResponse;
}

/** Claims for `role`; null on 204. */
export async function claim(key: string, role = "executor", workerId = "w1"): Promise<LeasedTaskResponse | null> {
  const res = await call("/v1/tasks/claim", { method: "POST", key, json: { worker_id: workerId, role } });
  if (res.status === 204) {
    expect(await res.text()).toBe("");
    return null;
  }
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as LeasedTaskResponse;
}

export function leaseCall(key: string, id: string, action: "heartbeat" | "complete" | "fail" | "release", body: Record<string, unknown>) {
  return call(`/v1/tasks/${id}/${action}`, { method: "POST", key, json: body });
}

export async function getTask(key: string, id: string): Promise<TaskResponse> {
  const res = await call(`/v1/tasks/${id}`, { key });
  expect(res.status).toBe(200);
  return json<TaskResponse>(res);
}

/** Moves a task's clock fields straight in D1, as if time had passed (tests cannot wait 15 minutes). */
export async function setTimes(id: string, times: { available_at?: string; lease_expires_at?: string; created_at?: string }) {
  for (const [column, value] of Object.entries(times)) {
    await env.DB.prepare(`UPDATE tasks SET ${column} = ? WHERE id = ?`).bind(value, id).run();
  }
}

export const past = (ms = 1000) => new Date(Date.now() - ms).toISOString();
