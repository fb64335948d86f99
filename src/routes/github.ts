import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { dbOf } from "../db/client";
import { teams } from "../db/schema";
import { findByIdempotencyKey, insertTask } from "../db/tasks";
import { taskEvent } from "../lib/task-events";
import { publishTeamEvents } from "../lib/team-stream";
import { DEFAULT_MAX_ATTEMPTS, PRIORITIES, type Priority, priorityRank } from "../domain/tasks";
import { decryptSecret, newId } from "../lib/crypto";
import { utf8 } from "../lib/encoding";
import { ApiError, fieldErrors, refuseUnfitJson } from "../lib/errors";
import { newRouter } from "../lib/openapi";

export const githubRoutes = newRouter();

/** The label that hands an issue to Switchboard, and the role its task is for. */
export const ORCHESTRATOR_LABEL = "orchestrator";
const ROLE = "executor";
const QUALIFYING_ACTIONS = new Set(["opened", "labeled", "reopened"]);

const SIGNATURE = /^sha256=([0-9a-f]{64})$/i;

/**
 * Checks GitHub's `X-Hub-Signature-256` (`sha256=` + hex HMAC-SHA256 of the raw body) with
 * WebCrypto's constant-time `verify`. Anything malformed is simply not valid.
 */
export async function verifyGitHubSignature(secret: string, body: Uint8Array<ArrayBuffer>, header: string | null | undefined): Promise<boolean> {
  const match = SIGNATURE.exec(header?.trim() ?? "");
  const hex = match?.[1];
  const key = await crypto.subtle.importKey("raw", utf8.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  // Without a well-formed signature, verify against zeros anyway: the answer takes as long.
  const signature = new Uint8Array(32);
  if (hex) for (let i = 0; i < 32; i++) signature[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  const ok = await crypto.subtle.verify("HMAC", key, signature, body);
  return ok && hex !== undefined;
}

/** The fields of an `issues` delivery that are used; anything else in the payload is ignored. */
export const issuesEventSchema = z.object({
  action: z.string(),
  issue: z.object({
    number: z.number().int().positive(),
    title: z.string(),
    body: z.string().nullish(),
    html_url: z.string().url(),
    labels: z.array(z.object({ name: z.string() })).default([]),
  }),
  repository: z.object({ full_name: z.string().min(1) }),
});
export type IssuesEvent = z.infer<typeof issuesEventSchema>;

/** `priority:<level>` labels name the task's priority (the most urgent wins); else `normal`. */
export function priorityFromLabels(labels: readonly string[]): Priority {
  const named = labels.map((l) => /^priority:\s*(\w+)$/i.exec(l.trim())?.[1]?.toLowerCase()).filter((p): p is Priority => (PRIORITIES as readonly string[]).includes(p ?? ""));
  return named.length === 0 ? "normal" : PRIORITIES[Math.min(...named.map(priorityRank))] ?? "normal";
}

/** The task an issue becomes: title, Markdown body with a link back, priority and key. */
export function taskFromIssue(event: IssuesEvent) {
  const { issue, repository } = event;
  const body = (issue.body ?? "").trim();
  const link = `From GitHub: [${repository.full_name}#${issue.number}](${issue.html_url})`;
  const description = `${body.slice(0, 90_000)}${body ? "\n\n---\n" : ""}${link}`;
  return {
    title: issue.title.trim().slice(0, 500) || `${repository.full_name}#${issue.number}`,
    description,
    priority: priorityFromLabels(issue.labels.map((l) => l.name)),
    idempotencyKey: `github:${repository.full_name}#${issue.number}`,
  };
}

const okSchema = z.object({ ok: z.literal(true) });
const resultSchema = z.union([
  z.object({ task_id: z.string(), created: z.boolean().describe("false when the issue already has its task") }),
  z.object({ ignored: z.string().describe("why the delivery made no task") }),
]);

// Documented here; handled by a plain route below: the signature is over the raw bytes.
githubRoutes.openAPIRegistry.registerPath(
  createRoute({
    method: "post",
    path: "/v1/webhooks/github/{team_id}",
    summary: "GitHub webhook: an issue labeled `orchestrator` becomes an executor task",
    description:
      "No API key: GitHub signs the body with the team's `github_webhook_secret` (`X-Hub-Signature-256`). `ping` answers 200; `issues` opened, labeled or reopened with the label `orchestrator` make one task per issue (priority from a `priority:<level>` label); other deliveries are ignored with 202.",
    request: {
      params: z.object({ team_id: z.string() }),
      headers: z.object({ "x-hub-signature-256": z.string(), "x-github-event": z.string(), "x-github-delivery": z.string().optional() }),
      body: { required: true, content: { "application/json": { schema: issuesEventSchema } } },
    },
    responses: {
      200: { description: "A ping", content: { "application/json": { schema: okSchema } } },
      202: { description: "The task (created now or earlier), or why nothing was made", content: { "application/json": { schema: resultSchema } } },
      400: { description: "A body that is not JSON or lacks the fields used (problem+json)" },
      401: { description: "An unknown team, no webhook secret, or a missing or bad signature (problem+json)" },
    },
  }),
);

githubRoutes.post("/v1/webhooks/github/:team_id", async (c) => {
  const teamId = c.req.param("team_id");
  const raw = new Uint8Array(await c.req.arrayBuffer());
  const db = dbOf(c.env);

  // An unknown team, a team without a secret and a bad signature all answer alike.
  const row = await db.select({ secret: teams.githubWebhookSecret }).from(teams).where(eq(teams.id, teamId)).get();
  const secret = row?.secret ? await decryptSecret(c.env.SECRETS_KEY, row.secret, `${teamId}:github_webhook_secret`) : null;
  const valid = await verifyGitHubSignature(secret ?? "no secret", raw, c.req.header("X-Hub-Signature-256"));
  if (!secret || !valid) throw new ApiError("bad_signature", "The X-Hub-Signature-256 signature is missing or not valid for this webhook.");

  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(raw));
  } catch {
    throw new ApiError("validation", "The body is not valid JSON.");
  }
  refuseUnfitJson(payload, true);

  const event = c.req.header("X-GitHub-Event") ?? "";
  if (event === "ping") return c.json({ ok: true as const }, 200);
  if (event !== "issues") return c.json({ ignored: `event ${event || "(none)"} is not handled` }, 202);

  const parsed = issuesEventSchema.safeParse(payload);
  if (!parsed.success) throw new ApiError("validation", "The issues payload lacks fields Switchboard uses.", fieldErrors(parsed.error));
  const delivery = parsed.data;
  if (!QUALIFYING_ACTIONS.has(delivery.action)) return c.json({ ignored: `issues action ${delivery.action} is not handled` }, 202);
  if (!delivery.issue.labels.some((l) => l.name.trim().toLowerCase() === ORCHESTRATOR_LABEL)) {
    return c.json({ ignored: `the issue is not labeled ${ORCHESTRATOR_LABEL}` }, 202);
  }

  const task = taskFromIssue(delivery);
  // One task per issue: a redelivery or a later qualifying event finds the first.
  const earlier = await findByIdempotencyKey(db, teamId, task.idempotencyKey);
  if (earlier) return c.json({ task_id: earlier.id, created: false }, 202);
  const now = new Date().toISOString();
  const created = await insertTask(db, {
    teamId,
    id: newId("task"),
    title: task.title,
    description: task.description,
    role: ROLE,
    priority: priorityRank(task.priority),
    dependsOn: [],
    status: "pending",
    blockedBy: null,
    maxAttempts: DEFAULT_MAX_ATTEMPTS,
    availableAt: now,
    idempotencyKey: task.idempotencyKey,
    source: "github",
    createdAt: now,
    updatedAt: now,
  });
  if (created) {
    await publishTeamEvents(c.env, teamId, [taskEvent("task.created", created)]);
    return c.json({ task_id: created.id, created: true }, 202);
  }
  // A concurrent delivery for the same issue won the insert.
  const winner = await findByIdempotencyKey(db, teamId, task.idempotencyKey);
  if (!winner) throw new Error("task insert changed nothing, yet no task has its idempotency key");
  return c.json({ task_id: winner.id, created: false }, 202);
});
