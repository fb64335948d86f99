import { randomUUID } from "node:crypto";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevWorker, eventually, getJson, setUpTeam, startDevWorker } from "./dev-worker";

/**
 * A client that stops reading must not make the hub (or the runtime) hold every event for it
 * (durable-objects/fanout.ts drops a stream 4 MiB behind). Only a real server has the socket
 * and proxy buffers that stand between the hub and such a client, so this runs against
 * `wrangler dev`: measured by hand, the stream ended after ~12 MB reached the client of 60 MB
 * posted (4 MiB in the hub, the rest in the buffers on the way).
 */

let worker: DevWorker;
beforeAll(async () => {
  worker = await startDevWorker();
}, 120_000);
afterAll(async () => {
  await worker?.stop();
});

/** The topic hub's open streams, as the admin route shows them. */
async function openStreams(team: { team_id: string; sessionId: string; topicId: string }): Promise<number> {
  const body = await getJson(worker, `/v1/admin/teams/${team.team_id}/hubs?session_id=${team.sessionId}&topic_id=${team.topicId}`, worker.adminToken);
  return body.hubs[1].streams;
}

describe("streams whose clients went away or stopped reading, under wrangler dev", () => {
  it("is ended by the server instead of buffered without end, while posting goes on", async () => {
    const team = await setUpTeam(worker, "s-slow", "t-slow");
    const socket = net.connect(worker.port, "127.0.0.1");
    socket.write(`GET /v1/sessions/${team.sessionId}/topics/${team.topicId}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${team.api_key}\r\nAccept: text/event-stream\r\n\r\n`);
    let received = 0;
    let head = "";
    let ended = false;
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (head.length < 4096) head += chunk.toString("utf8");
    });
    socket.on("end", () => (ended = true));
    socket.on("close", () => (ended = true));
    socket.on("error", () => (ended = true));
    // Wait for the headers and the snapshot, then stop reading.
    for (let i = 0; i < 200 && !head.includes("event: snapshot"); i++) await new Promise((r) => setTimeout(r, 50));
    expect(head).toMatch(/^HTTP\/1\.1 200[\s\S]*event: snapshot/);
    socket.pause();

    const pad = "x".repeat(200_000);
    const events = 150; // 30 MB: well past the hub's 4 MiB and the buffers in front of it
    for (let i = 0; i < events; i++) {
      const event = { id: randomUUID(), type: "usage.reported", session_id: team.sessionId, topic_id: team.topicId, data: { step: "explore", tools: [{ name: "bash", calls: 1, duration_ms: 1, errors: 0 }], pad } };
      const res = await fetch(`${worker.url}/v1/callbacks`, { method: "POST", headers: { Authorization: `Bearer ${team.api_key}`, "Content-Type": "application/json" }, body: JSON.stringify(event) });
      await res.arrayBuffer();
      expect(res.status).toBe(202);
    }
    await new Promise((r) => setTimeout(r, 2000)); // the queue applies the last events

    socket.resume();
    const until = Date.now() + 30_000;
    while (!ended && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    socket.destroy();
    expect(ended).toBe(true);
    expect(received).toBeLessThan(events * pad.length);
    expect(await eventually(() => openStreams(team), (n) => n === 0)).toBe(0);
  }, 120_000);

  it("are let go by their hub once the clients close them (straight to the runtime)", async () => {
    // Through wrangler's proxy the hub is never told: the proxy keeps reading the stream after
    // its client left (measured: 10 streams closed, 10 still open after events were written;
    // cloudflare/workers-sdk#9438). Straight to the runtime, the next write finds them gone.
    const runtime = await worker.runtimeUrl();
    expect(runtime).not.toBeNull();
    const team = await setUpTeam(worker, "s-gone", "t-gone");
    const clients = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const abort = new AbortController();
        const res = await fetch(`${runtime}/v1/sessions/${team.sessionId}/topics/${team.topicId}/stream`, { headers: { Authorization: `Bearer ${team.api_key}` }, signal: abort.signal });
        await (res.body as ReadableStream<Uint8Array>).getReader().read(); // retry and snapshot
        return abort;
      }),
    );
    expect(await openStreams(team)).toBe(20);
    for (const c of clients) c.abort();
    await team.post("/v1/callbacks", team.api_key, { id: randomUUID(), type: "step_started", session_id: team.sessionId, topic_id: team.topicId, data: { step: "design" } });
    expect(await eventually(() => openStreams(team), (n) => n === 0)).toBe(0);
  }, 60_000);
});
