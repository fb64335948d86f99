import { describe, expect, it } from "vitest";
import { MAX_DELIVERY_ATTEMPTS, retryDelaySeconds } from "../src/domain/notifications";

/** The waits between the tries of one delivery: one after each try but the last. */
const waits = (cap: number, random: () => number) => Array.from({ length: MAX_DELIVERY_ATTEMPTS - 1 }, (_, i) => retryDelaySeconds(i + 1, cap, undefined, () => random()));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe("notification retries: the wait before each try", () => {
  it("grows to the deployed cap of 300 s, spreading the tries over 6 to 12 minutes whatever the draw", () => {
    expect(waits(300, () => 1)).toEqual([60, 120, 240, 300]);
    expect(waits(300, () => 0)).toEqual([30, 60, 120, 150]);
    expect(waits(300, () => 0.5)).toEqual([45, 90, 180, 225]);
    expect(sum(waits(300, () => 0))).toBe(360);
    expect(sum(waits(300, () => 1))).toBe(720);
    // Later attempts (a delivery the cron queued again) stay at the cap.
    expect(retryDelaySeconds(9, 300, undefined, () => 1)).toBe(300);
  });

  it("keeps to a smaller cap (the tests' 1 s), and never waits 0 s", () => {
    expect(waits(1, () => 1)).toEqual([1, 1, 1, 1]);
    expect(waits(1, () => 0)).toEqual([1, 1, 1, 1]);
    expect(waits(100, () => 1)).toEqual([60, 100, 100, 100]);
  });

  it("takes the receiver's Retry-After instead, capped", () => {
    expect(retryDelaySeconds(1, 300, 5, () => 1)).toBe(5);
    expect(retryDelaySeconds(4, 300, 3600, () => 1)).toBe(300);
    expect(retryDelaySeconds(1, 1, 30, () => 1)).toBe(1);
  });
});
