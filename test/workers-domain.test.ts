import { describe, expect, it } from "vitest";
import { type ClaimLimits, claimRefusal, secondsUntilUtcMidnight, utcDayStart } from "../src/domain/workers";

const at = (iso: string) => new Date(iso);
const limits = (over: Partial<ClaimLimits> = {}): ClaimLimits => ({ role: "executor", claimable: true, dailyBudgetUsd: null, spentTodayUsd: 0, maxRunning: null, running: 0, ...over });

describe("the UTC day", () => {
  it("starts at 00:00 UTC and the wait runs to the next midnight", () => {
    expect(utcDayStart(at("2026-03-04T23:59:59.999Z"))).toBe("2026-03-04T00:00:00.000Z");
    expect(secondsUntilUtcMidnight(at("2026-03-04T23:00:00.000Z"))).toBe(3600);
    expect(secondsUntilUtcMidnight(at("2026-12-31T23:59:59.500Z"))).toBe(1);
    expect(secondsUntilUtcMidnight(at("2026-03-05T00:00:00.000Z"))).toBe(86_400);
  });
});

describe("why a claim got nothing", () => {
  const now = at("2026-03-04T22:00:00.000Z");
  it("nothing claimable is no refusal, whatever the limits", () => {
    expect(claimRefusal(limits({ claimable: false, dailyBudgetUsd: 1, spentTodayUsd: 5, maxRunning: 0 }), now)).toBeNull();
    expect(claimRefusal(limits(), now)).toBeNull();
  });
  it("the budget, spent, waits until midnight and is named before the limit", () => {
    expect(claimRefusal(limits({ dailyBudgetUsd: 2, spentTodayUsd: 2.5, maxRunning: 1, running: 1 }), now)).toEqual({
      reason: "budget",
      detail: expect.stringContaining("daily budget of $2.00 spent"),
      retryAfterSeconds: 7200,
    });
    expect(claimRefusal(limits({ dailyBudgetUsd: 2, spentTodayUsd: 1.99 }), now)).toBeNull();
  });
  it("the role's limit, reached, says so and waits 30 seconds", () => {
    expect(claimRefusal(limits({ maxRunning: 3, running: 3 }), now)).toEqual({ reason: "max_running", detail: expect.stringContaining("max_running for executor is 3"), retryAfterSeconds: 30 });
    expect(claimRefusal(limits({ maxRunning: 3, running: 2 }), now)).toBeNull();
  });
});
