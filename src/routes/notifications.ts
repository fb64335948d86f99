import { createRoute, z } from "@hono/zod-openapi";
import { dbOf } from "../db/client";
import { type ChannelRow, deleteChannel, type DeliveryRow, findChannel, findDelivery, insertChannelWithin, listChannels, listDeliveries } from "../db/notifications";
import { checkChannelUrl, DELIVERY_STATUSES, type DeliveryStatus, FORMATS, type Format, formatFor, MAX_CHANNELS_PER_TEAM, NOTIFIABLE_EVENTS, TEST_EVENT, urlHint } from "../domain/notifications";
import { authenticate, requireScope } from "../lib/auth";
import { encryptSecret, newId } from "../lib/crypto";
import { toBase64 } from "../lib/encoding";
import { ApiError } from "../lib/errors";
import { clientId } from "../lib/ids";
import { json, newRouter, problemResponses, security } from "../lib/openapi";
import { decodeCursor, listQuery, listSchema, page } from "../lib/pagination";
import { channelSecretContext, queueDeliveries } from "../notify/deliver";

/** Outgoing webhooks (Slack, Discord or signed JSON) for questions asked, tasks failed and the budget spent. */
export const notificationRoutes = newRouter();

const nidParam = z.object({ nid: clientId.describe("a channel id, as POST /v1/notifications gave it") });

export const createChannelSchema = z.object({
  url: z.string().max(2048).describe("https (http only to 127.0.0.1 or localhost); stored encrypted, never shown again"),
  name: z.string().trim().min(1).max(100).optional(),
  format: z.enum(FORMATS).optional().describe("default: slack for hooks.slack.com, discord for discord.com/api/webhooks, else json"),
  events: z
    .array(z.enum(NOTIFIABLE_EVENTS))
    .min(1)
    .max(NOTIFIABLE_EVENTS.length)
    .optional()
    .describe("default: all of them"),
});

export const channelSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    url_hint: z.string().describe("the host and the URL's last 4 characters: the URL is a credential"),
    format: z.enum(FORMATS),
    events: z.array(z.string()),
    signed: z.boolean().describe("json channels: deliveries carry Standard Webhooks headers"),
    created_at: z.string(),
  })
  .openapi("NotificationChannel");
const createdChannelSchema = channelSchema.extend({ signing_secret: z.string().nullable().describe("json channels: whsec_…, shown only now") }).openapi("CreatedNotificationChannel");

export const deliverySchema = z
  .object({
    id: z.string(),
    event_id: z.string(),
    event_type: z.string(),
    status: z.enum(DELIVERY_STATUSES),
    attempts: z.number().int(),
    last_status_code: z.number().int().nullable(),
    last_error: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    delivered_at: z.string().nullable(),
  })
  .openapi("NotificationDelivery");

function toChannel(row: ChannelRow) {
  return { id: row.id, name: row.name, url_hint: row.urlHint, format: row.format as Format, events: row.events, signed: row.signingSecret !== null, created_at: row.createdAt };
}

function toDelivery(row: DeliveryRow) {
  return {
    id: row.id,
    event_id: row.eventId,
    event_type: row.eventType,
    status: row.status as DeliveryStatus,
    attempts: row.attempts,
    last_status_code: row.lastStatusCode,
    last_error: row.lastError,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
    delivered_at: row.deliveredAt,
  };
}

notificationRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/notifications",
    summary: "Register an outgoing webhook for questions asked, tasks failed and the daily budget spent",
    description: "Slack (`{text}`) and Discord (`{content}`) incoming webhooks, or any URL that takes the event as JSON, signed with Standard Webhooks headers under the `signing_secret` returned here once.",
    security,
    middleware: [authenticate, requireScope("operator")] as const,
    request: { body: { required: true, ...json(createChannelSchema) } },
    responses: { 201: { description: "Registered", ...json(createdChannelSchema) }, 409: { description: `The team has ${MAX_CHANNELS_PER_TEAM} channels already` }, ...problemResponses },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const teamId = c.get("auth").team_id;
    const checked = checkChannelUrl(body.url);
    if (!checked.ok) throw new ApiError("validation", `The url ${checked.reason}.`, [{ path: "url", message: checked.reason }]);
    const db = dbOf(c.env);
    const id = newId("nch");
    const format = body.format ?? formatFor(checked.url);
    const signingSecret = format === "json" ? `whsec_${toBase64(crypto.getRandomValues(new Uint8Array(32)))}` : null;
    const row = await insertChannelWithin(
      db,
      {
        teamId,
        id,
        name: body.name ?? checked.url.host,
        url: await encryptSecret(c.env.SECRETS_KEY, checked.url.toString(), channelSecretContext(teamId, id, "url")),
        urlHint: urlHint(checked.url),
        format,
        events: body.events ? [...new Set(body.events)] : [...NOTIFIABLE_EVENTS],
        signingSecret: signingSecret ? await encryptSecret(c.env.SECRETS_KEY, signingSecret, channelSecretContext(teamId, id, "signing_secret")) : null,
        createdAt: new Date().toISOString(),
      },
      MAX_CHANNELS_PER_TEAM,
    );
    if (!row) throw new ApiError("conflict", `A team has at most ${MAX_CHANNELS_PER_TEAM} notification channels; delete one first.`);
    return c.json({ ...toChannel(row), signing_secret: signingSecret }, 201);
  },
);

notificationRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/notifications",
    summary: "The team's notification channels, oldest first (at most 20: one page)",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    responses: { 200: { description: "Channels", ...json(listSchema(channelSchema)) }, ...problemResponses },
  }),
  async (c) => {
    const rows = await listChannels(dbOf(c.env), c.get("auth").team_id);
    return c.json({ items: rows.map(toChannel), next_cursor: null }, 200);
  },
);

notificationRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/notifications/{nid}",
    summary: "One notification channel",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { params: nidParam },
    responses: { 200: { description: "The channel", ...json(channelSchema) }, ...problemResponses },
  }),
  async (c) => {
    const { nid } = c.req.valid("param");
    const row = await findChannel(dbOf(c.env), c.get("auth").team_id, nid);
    if (!row) throw new ApiError("not_found", `No notification channel ${nid}.`);
    return c.json(toChannel(row), 200);
  },
);

notificationRoutes.openapi(
  createRoute({
    method: "delete",
    path: "/v1/notifications/{nid}",
    summary: "Remove a channel and its delivery history; deliveries still queued are dropped",
    security,
    middleware: [authenticate, requireScope("operator")] as const,
    request: { params: nidParam },
    responses: { 204: { description: "Removed" }, ...problemResponses },
  }),
  async (c) => {
    const { nid } = c.req.valid("param");
    if (!(await deleteChannel(dbOf(c.env), c.get("auth").team_id, nid))) throw new ApiError("not_found", `No notification channel ${nid}.`);
    return c.body(null, 204);
  },
);

notificationRoutes.openapi(
  createRoute({
    method: "post",
    path: "/v1/notifications/{nid}/test",
    summary: "Send a test message to the channel; follow it in its deliveries",
    security,
    middleware: [authenticate, requireScope("operator")] as const,
    request: { params: nidParam },
    responses: { 202: { description: "Queued", ...json(deliverySchema) }, ...problemResponses },
  }),
  async (c) => {
    const { nid } = c.req.valid("param");
    const teamId = c.get("auth").team_id;
    const db = dbOf(c.env);
    if (!(await findChannel(db, teamId, nid))) throw new ApiError("not_found", `No notification channel ${nid}.`);
    const [id] = await queueDeliveries(c.env, teamId, [{ id: newId("tev"), type: TEST_EVENT, at: new Date().toISOString(), data: {} }], nid);
    const row = id ? await findDelivery(db, teamId, id) : undefined;
    if (!row) throw new Error("a test delivery was not recorded");
    return c.json(toDelivery(row), 202);
  },
);

notificationRoutes.openapi(
  createRoute({
    method: "get",
    path: "/v1/notifications/{nid}/deliveries",
    summary: "The channel's deliveries, newest first: pending (with attempts so far), delivered or failed, with the last answer",
    security,
    middleware: [authenticate, requireScope("read")] as const,
    request: { params: nidParam, query: listQuery },
    responses: { 200: { description: "Deliveries", ...json(listSchema(deliverySchema)) }, ...problemResponses },
  }),
  async (c) => {
    const { nid } = c.req.valid("param");
    const { limit, cursor } = c.req.valid("query");
    const teamId = c.get("auth").team_id;
    const db = dbOf(c.env);
    if (!(await findChannel(db, teamId, nid))) throw new ApiError("not_found", `No notification channel ${nid}.`);
    const after = decodeCursor(cursor, 2) as [string, string] | null;
    const rows = await listDeliveries(db, teamId, nid, limit + 1, after);
    return c.json(page(rows.map(toDelivery), limit, (d) => [d.created_at, d.id]), 200);
  },
);
