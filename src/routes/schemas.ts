import { z } from "@hono/zod-openapi";
import { jsonSchema } from "../domain/json";
import { STEPS } from "../domain/steps";

/** Response shapes shared by the session routes, exported for tests and the CLI. */
export const stepRecordSchema = z.object({
  status: z.enum(["pending", "running", "completed", "failed"]),
  turns: z.number(),
  max_turns: z.number(),
  cost_usd: z.number(),
  duration_ms: z.number().nullable(),
  tools: z.array(z.object({ name: z.string(), calls: z.number(), duration_ms: z.number(), errors: z.number() })),
  started_at: z.string().nullable(),
  ended_at: z.string().nullable(),
  error: z.string().nullable(),
});

export const alphaSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  expression: z.string().nullable(),
  metrics: z.record(z.string(), z.number()).nullable(),
  passed: z.boolean().nullable(),
  registered_at: z.string().nullable(),
  evaluated_at: z.string().nullable(),
});

export const topicSchema = z.object({
  id: z.string(),
  status: z.enum(["created", "running", "completed", "failed"]),
  current_step: z.enum(STEPS).nullable(),
  hypothesis: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  steps: z.record(z.enum(STEPS), stepRecordSchema),
  alphas: z.array(alphaSchema),
});
export type TopicResponse = z.infer<typeof topicSchema>;

export const sessionSchema = z.object({
  id: z.string(),
  status: z.enum(["created", "running", "completed", "failed"]),
  status_reason: z.string().optional(),
  status_at: z.string().optional().describe("when the status now shown occurred, by the reports' occurred_at (a report of an earlier status that occurred before it changes nothing)"),
  title: z.string().nullable(),
  metadata: z.record(z.string(), jsonSchema),
  created_at: z.string(),
  updated_at: z.string(),
  insights: z.record(z.string(), z.object({ id: z.string(), title: z.string().optional(), status: z.enum(["started", "failed"]), error: z.string().optional() })),
  rejected_events: z.array(z.object({ event_id: z.string(), type: z.string(), reason: z.string() })),
  topics: z.array(topicSchema).describe("the first 100 topics, oldest first (GET /v1/sessions/{sid}/topics lists them all)"),
  topics_total: z.number().int().describe("how many topics the session has"),
});
export type SessionResponse = z.infer<typeof sessionSchema>;

export const sessionListItemSchema = z.object({
  id: z.string(),
  status: z.string(),
  title: z.string().nullable(),
  metadata: z.record(z.string(), jsonSchema).nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

export const alphaListItemSchema = alphaSchema.extend({ topic_id: z.string() });

export const topicListItemSchema = z.object({
  id: z.string(),
  status: z.string(),
  current_step: z.string().nullable(),
  hypothesis: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
