import { describe, expect, it } from "vitest";
import { backoffSeconds } from "../src/domain/backoff";
import {
  afterFailure,
  blockingTask,
  CANCELLABLE_STATUSES,
  canTransition,
  checkAsk,
  checkCancel,
  checkLease,
  checkRetry,
  leaseExpiry,
  PRIORITIES,
  priorityName,
  priorityRank,
  retryWaits,
  TASK_STATUSES,
} from "../src/domain/tasks";

const NOW = new Date("2026-11-22T10:00:00.000Z");
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000).toISOString();

describe("task priorities", () => {
  it("rank critical > high > normal > low as ascending numbers, so ORDER BY priority claims the urgent first", () => {
    expect(PRIORITIES.map(priorityRank)).toEqual([0, 1, 2, 3]);
    expect(priorityRank("critical")).toBeLessThan(priorityRank("high"));
    expect(priorityRank("normal")).toBeLessThan(priorityRank("low"));
    for (const p of PRIORITIES) expect(priorityName(priorityRank(p))).toBe(p);
    expect(() => priorityName(7)).toThrow();
  });
});

describe("task status transitions", () => {
  it("never leaves completed; failed and cancelled only go back to pending (a retry)", () => {
    for (const to of TASK_STATUSES) expect(canTransition("completed", to)).toBe(false);
    expect(TASK_STATUSES.filter((to) => canTransition("failed", to))).toEqual(["pending"]);
    expect(TASK_STATUSES.filter((to) => canTransition("cancelled", to))).toEqual(["pending"]);
    expect(canTransition("pending", "claimed")).toBe(true);
    expect(canTransition("pending", "completed")).toBe(false);
    expect(canTransition("blocked", "claimed")).toBe(false);
    expect(canTransition("claimed", "running")).toBe(true);
  });

  it("cancels anything not yet ended, and retries only what failed for good or was cancelled", () => {
    expect([...CANCELLABLE_STATUSES].sort()).toEqual(["blocked", "claimed", "pending", "running", "waiting_input"]);
    expect(checkCancel("running")).toEqual({ ok: true });
    expect(checkCancel("completed")).toEqual({ ok: false, reason: expect.stringContaining("completed") });
    expect(checkRetry({ status: "failed", blocked_by: null })).toEqual({ ok: true });
    expect(checkRetry({ status: "cancelled", blocked_by: null })).toEqual({ ok: true });
    expect(checkRetry({ status: "blocked", blocked_by: "task_x" })).toEqual({ ok: false, reason: expect.stringContaining("task_x") });
    expect(checkRetry({ status: "running", blocked_by: null }).ok).toBe(false);
    expect(checkRetry({ status: "completed", blocked_by: null }).ok).toBe(false);
  });
});

describe("leases", () => {
  const held = { status: "running" as const, lease_id: "lease_a", lease_expires_at: at(60) };

  it("accept only the task's current, unexpired lease, and say why not", () => {
    expect(checkLease(held, "lease_a", at(0))).toEqual({ ok: true });
    expect(checkLease(held, "lease_b", at(0))).toEqual({ ok: false, reason: expect.stringContaining("not this task's current one") });
    expect(checkLease(held, "lease_a", at(60))).toEqual({ ok: false, reason: expect.stringContaining("expired") });
    expect(checkLease({ ...held, status: "pending", lease_id: null, lease_expires_at: null }, "lease_a", at(0))).toEqual({ ok: false, reason: expect.stringContaining("pending") });
    expect(checkLease({ ...held, status: "completed" }, "lease_a", at(0)).ok).toBe(false);
  });

  it("last 15 minutes by default", () => {
    expect(leaseExpiry(NOW)).toBe(at(15 * 60));
  });
});

describe("failure and retry backoff", () => {
  it("sends a failed attempt back to the queue after an exponential, jittered wait while attempts are left", () => {
    expect(afterFailure({ attempts: 1, max_attempts: 3 }, NOW, () => 1)).toEqual({ status: "pending", available_at: at(30) });
    expect(afterFailure({ attempts: 2, max_attempts: 3 }, NOW, () => 1)).toEqual({ status: "pending", available_at: at(60) });
    expect(afterFailure({ attempts: 1, max_attempts: 3 }, NOW, () => 0.5)).toEqual({ status: "pending", available_at: at(15) });
    // Never at once, and never more than an hour.
    expect(afterFailure({ attempts: 1, max_attempts: 3 }, NOW, () => 0)).toEqual({ status: "pending", available_at: at(1) });
    expect(afterFailure({ attempts: 20, max_attempts: 50 }, NOW, () => 1)).toEqual({ status: "pending", available_at: at(3600) });
  });

  it("fails for good once the attempts (counted at claim) are used up", () => {
    expect(afterFailure({ attempts: 3, max_attempts: 3 }, NOW)).toEqual({ status: "failed" });
    expect(afterFailure({ attempts: 1, max_attempts: 1 }, NOW)).toEqual({ status: "failed" });
  });

  it("lists the retry wait of every attempt count for the failing statement, as afterFailure gives each, up to the hour it stops at", () => {
    expect(retryWaits(NOW, () => 1)).toEqual([30, 60, 120, 240, 480, 960, 1920, 3600].map(at));
    expect(retryWaits(NOW, () => 0)).toEqual(Array.from({ length: 8 }, () => at(1)));
    // One draw for all: entry i is afterFailure's answer for attempt i + 1, the last for every later one.
    for (const r of [0.01, 0.37, 0.99]) {
      const waits = retryWaits(NOW, () => r);
      for (let attempts = 1; attempts <= 20; attempts++) {
        expect(afterFailure({ attempts, max_attempts: 100 }, NOW, () => r)).toEqual({ status: "pending", available_at: waits[Math.min(attempts, waits.length) - 1] });
      }
    }
  });

  it("scales the shared backoff by a base", () => {
    expect(backoffSeconds(1, () => 1, 300, 15)).toBe(30);
    expect(backoffSeconds(3, () => 1, 300, 15)).toBe(120);
    expect(backoffSeconds(10, () => 1, 300, 15)).toBe(300);
    expect(backoffSeconds(1, () => 1)).toBe(2);
  });
});

describe("what blocks a task", () => {
  it("names a failed or cancelled dependency, or what blocks a blocked one; nothing while dependencies may still complete", () => {
    expect(blockingTask([])).toBeNull();
    expect(blockingTask([{ id: "a", status: "completed", blocked_by: null }, { id: "b", status: "pending", blocked_by: null }, { id: "c", status: "running", blocked_by: null }])).toBeNull();
    expect(blockingTask([{ id: "a", status: "completed", blocked_by: null }, { id: "b", status: "failed", blocked_by: null }])).toBe("b");
    expect(blockingTask([{ id: "c", status: "cancelled", blocked_by: null }])).toBe("c");
    expect(blockingTask([{ id: "d", status: "blocked", blocked_by: "root" }])).toBe("root");
  });
});

describe("who may ask a question", () => {
  const held = { worker_id: "w1", lease_expires_at: at(60) };
  it("the holder of a claimed or running task with an unexpired lease, and no one else", () => {
    expect(checkAsk({ ...held, status: "claimed" }, "w1", at(0))).toEqual({ ok: true });
    expect(checkAsk({ ...held, status: "running" }, "w1", at(0))).toEqual({ ok: true });
    const refused = (v: ReturnType<typeof checkAsk>) => (v.ok ? "" : v.reason);
    expect(refused(checkAsk({ ...held, status: "running" }, "w2", at(0)))).toContain("held by worker w1");
    expect(refused(checkAsk({ ...held, status: "waiting_input" }, "w1", at(0)))).toContain("waiting_input");
    for (const status of ["pending", "completed", "failed", "cancelled", "blocked"] as const) expect(refused(checkAsk({ ...held, status }, "w1", at(0)))).toContain(status);
    expect(refused(checkAsk({ ...held, status: "running" }, "w1", at(60)))).toContain("expired");
    // Asking and answering are transitions the queue allows.
    expect(canTransition("running", "waiting_input") && canTransition("claimed", "waiting_input") && canTransition("waiting_input", "running")).toBe(true);
  });
});
