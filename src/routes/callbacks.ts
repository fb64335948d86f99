import { createRoute, z } from "@hono/zod-openapi";
import { and, eq } from "drizzle-orm";
import { dbOf } from "../db/client";
import { existingSessionIds } from "../db/index-rows";
import { teams, webhookIds } from "../db/schema";
import { callbackBodySchema, parseCallbackBody, stampAccepted } from "../domain/events";
import { authenticate, requireScope } from "../lib/auth";
import { decryptSecret } from "../lib/crypto";
import { utf8 } from "../lib/encoding";
import { sessionCache, signingSecretCache } from "../lib/auth-cache";
import { ApiError, fieldErrors, refuseUnfitJson } from "../lib/errors";
import { log } from "../lib/log";
import { newRouter, problemResponses, security } from "../lib/openapi";
import { verifyPayload } from "../lib/standard-webhooks";
import { GroupSender } from "../queue/group-send";
import { type CallbackMessage, INLINE_LIMIT_BYTES, oversizeKey } from "../queue/messages";

export const callbackRoutes = newRouter();

export const acceptedSchema = z.object({ accepted: z.number().int(), request_id: z.string() });
export type Accepted = z.infer<typeof acceptedSchema>;

// Documented here; handled by a plain route below, because a signature is checked over the
// raw bytes, which a validator that parses first would no longer have.
callbackRoutes.openAPIRegistry.registerPath(
  createRoute({
    method: "post",
    path: "/v1/callbacks",
    summary: "Report one event or up to 100 ({events: [...]}); applied in order, exactly once per event id",
    description: "With a team signing secret, Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) are required.",
    security,
    request: { body: { required: true, content: { "application/json": { schema: callbackBodySchema } } } },
    responses: {
      202: { description: "Accepted for the queue", content: { "application/json": { schema: acceptedSchema } } },
      ...problemResponses,
      // 413 and 415, as on every JSON-body operation: withBodyRefusals (src/lib/openapi.ts).
      503: { description: "The team's signing secret carries no usable key: an operator must set a new one (problem+json)" },
    },
  }),
);

callbackRoutes.post("/v1/callbacks", authenticate, requireScope("agent"), async (c) => {
  const acceptedAt = new Date();
  // The signature is over the bytes as sent: c.req.text() would drop a leading UTF-8 BOM
  // (TextDecoder does), and a signed body starting with one would never verify. Decoded only
  // for parsing, where dropping the BOM is what JSON.parse needs.
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  const team = c.get("auth").team_id;
  const db = dbOf(c.env);

  let webhookId: string | null = null;
  const secret = await teamSigningSecret(c.env, team);
  if (secret) {
    const headers = { id: c.req.header("webhook-id") ?? null, timestamp: c.req.header("webhook-timestamp") ?? null, signature: c.req.header("webhook-signature") ?? null };
    const verdict = await verifyPayload(secret, headers, bytes, Math.floor(Date.now() / 1000));
    if (!verdict.ok && verdict.reason === "unusable_secret") {
      // Only a secret stored before PATCH /v1/team checked the key can get here: no request
      // could pass it, which is the team's configuration to fix, not this request's fault.
      throw new ApiError("unavailable", "The team's signing secret carries no usable key (not valid base64, or too short): an operator must set a new one with PATCH /v1/team.");
    }
    if (!verdict.ok) throw new ApiError("bad_signature", `The callback signature is not valid (${verdict.reason}).`);
    webhookId = headers.id as string;
  }

  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new ApiError("validation", "The body is not valid JSON.");
  }
  refuseUnfitJson(body);
  const parsed = parseCallbackBody(body);
  if (!parsed.success) throw new ApiError("validation", "The callback is not valid.", fieldErrors(parsed.error));
  const events = stampAccepted(parsed.events, acceptedAt);

  const unseen = [...new Set(events.map((e) => e.session_id))].filter((id) => !sessionCache.has(team, id));
  if (unseen.length > 0) {
    const known = await existingSessionIds(db, team, unseen);
    const missing = unseen.filter((id) => !known.has(id));
    if (missing.length > 0) throw new ApiError("not_found", `No session ${missing.join(", ")}.`);
    for (const id of unseen) sessionCache.remember(team, id);
  }

  // A webhook-id is good once: a captured request sent again within the window is refused.
  // It is claimed only now, once the request would be accepted, so a sender that got a 4xx
  // (a session created a moment later) or a 5xx may resend it with the same id, as Standard
  // Webhooks senders do; the primary key lets one of two concurrent deliveries through.
  const claim = webhookId === null ? null : await claimWebhookId(db, team, webhookId);

  const requestId = c.get("requestId");
  try {
    let message: CallbackMessage = { kind: "callbacks", team_id: team, request_id: requestId, events };
    let bytes = utf8.encode(JSON.stringify(message)).byteLength;
    if (bytes > INLINE_LIMIT_BYTES) {
      // Keyed by an id of our own: the request id may come from the client's X-Request-Id,
      // and two requests sharing one would overwrite each other's events.
      const key = oversizeKey(team, crypto.randomUUID());
      await c.env.BUCKET.put(key, JSON.stringify(events), { httpMetadata: { contentType: "application/json" }, customMetadata: { request_id: requestId } });
      message = { kind: "callbacks", team_id: team, request_id: requestId, r2_key: key };
      bytes = utf8.encode(JSON.stringify(message)).byteLength;
    }
    await callbackSender(c.env.CALLBACKS).send(message, bytes, waitUntilOf(c));
  } catch (error) {
    // Not accepted: the sender may try again with the same webhook-id. (A stored request is
    // left in R2: a send that failed may still have reached the queue, pointing at it.)
    if (claim) await claim.release();
    throw error;
  }
  return c.json({ accepted: events.length, request_id: requestId }, 202);
});

/** Records a webhook-id as used; 401 when it already was. `release` undoes it (only this claim). */
async function claimWebhookId(db: ReturnType<typeof dbOf>, team: string, webhookId: string): Promise<{ release(): Promise<void> }> {
  const seenAt = Date.now();
  const fresh = await db.insert(webhookIds).values({ teamId: team, webhookId, seenAt }).onConflictDoNothing().returning().all();
  if (fresh.length === 0) throw new ApiError("bad_signature", "This webhook-id was already used: a replayed request.");
  return {
    async release() {
      try {
        await db.delete(webhookIds).where(and(eq(webhookIds.teamId, team), eq(webhookIds.webhookId, webhookId), eq(webhookIds.seenAt, seenAt)));
      } catch (error) {
        // The request fails either way; the id then stays used until the cron sweeps it.
        log("error", "webhook-id release failed", { team_id: team, webhook_id: webhookId, error: error instanceof Error ? error.message : String(error) });
      }
    },
  };
}

/** The team's Standard Webhooks secret, or null when callbacks need no signature. */
async function teamSigningSecret(env: Env, team: string): Promise<string | null> {
  const cached = signingSecretCache.get(team);
  if (cached) return cached.secret;
  const row = await dbOf(env).select({ signingSecret: teams.signingSecret }).from(teams).where(eq(teams.id, team)).get();
  const secret = row?.signingSecret ? await decryptSecret(env.SECRETS_KEY, row.signingSecret, `${team}:signing_secret`) : null;
  signingSecretCache.remember(team, secret);
  return secret;
}

/** One group sender per queue binding (per isolate): requests in flight together share a sendBatch. */
const senders = new WeakMap<Queue, GroupSender<CallbackMessage>>();

function callbackSender(queue: Queue): GroupSender<CallbackMessage> {
  let sender = senders.get(queue);
  if (!sender) {
    sender = new GroupSender<CallbackMessage>((bodies) => queue.sendBatch(bodies.map((body) => ({ body, contentType: "json" as const }))).then(() => undefined));
    senders.set(queue, sender);
  }
  return sender;
}

/** The request's waitUntil, when it runs with an execution context (not in app.request() tests). */
function waitUntilOf(c: { executionCtx: { waitUntil(p: Promise<unknown>): void } }): ((p: Promise<unknown>) => void) | undefined {
  try {
    const ctx = c.executionCtx;
    return (p) => ctx.waitUntil(p);
  } catch {
    return undefined;
  }
}
