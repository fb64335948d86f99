import { describe, expect, it } from "vitest";
import { LEASE_HEARTBEAT_MAX_MS, leaseHeartbeatEvery } from "../../cli/worker/daemon";

// The lease heartbeat is how a worker learns that a person cancelled its task: a cancelled
// agent runs on (and spends) until the next one.
describe("the worker's default lease heartbeat", () => {
  it("comes every minute on the 15-minute lease, not every third of it (5 minutes)", () => {
    expect(LEASE_HEARTBEAT_MAX_MS).toBe(60_000);
    expect(leaseHeartbeatEvery(15 * 60_000)).toBe(60_000);
    // A lease that cannot be read is taken as the default 15 minutes.
    expect(leaseHeartbeatEvery(Number.NaN)).toBe(60_000);
  });

  it("comes every third of a shorter lease, and never more than once a second", () => {
    expect(leaseHeartbeatEvery(90_000)).toBe(30_000);
    expect(leaseHeartbeatEvery(1_200)).toBe(1_000);
  });
});
