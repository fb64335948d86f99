import type { Json } from "../domain/json";
import { type SQL, sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * A row's version: 0 when inserted, one more with every write to it, in the statement that
 * writes it. drizzle adds it to every `update(...)` and `onConflictDoUpdate` set of the table
 * (`$onUpdate`), so no update path can forget it; an insert takes the default (drizzle prefers
 * it to `$onUpdate`), and an insert from a SELECT names it (its column list is every column).
 * The team stream carries it with each record, so the TeamHub can drop an event that reaches it
 * after one about a later write to the same row (durable-objects/team-hub.ts). Unqualified: in
 * an UPDATE's SET, and in an upsert's DO UPDATE, the bare name is the row being written.
 */
const rowVersion = () =>
  integer("version")
    .notNull()
    .default(0)
    .$onUpdate((): SQL => sql`${sql.identifier("version")} + 1`);

export const teams = sqliteTable("teams", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  // Secrets are AES-GCM ciphertexts under SECRETS_KEY (src/lib/crypto.ts), never plain text.
  signingSecret: text("signing_secret"),
  githubWebhookSecret: text("github_webhook_secret"),
  githubToken: text("github_token"),
  dailyBudgetUsd: real("daily_budget_usd"),
  maxRunning: text("max_running", { mode: "json" }).$type<Record<string, number>>(),
  createdAt: text("created_at").notNull(),
  updatedAt: text("updated_at").notNull(),
});

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    teamId: text("team_id").notNull().references(() => teams.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    scopes: text("scopes", { mode: "json" }).notNull().$type<string[]>(),
    // SHA-256 of the whole key: keys are 192 random bits, so a fast hash is enough.
    hash: text("hash").notNull(),
    prefix: text("prefix").notNull(),
    createdAt: text("created_at").notNull(),
    lastUsedAt: text("last_used_at"),
    // Moved on by signing out: browser cookies carry the value at sign-in (src/lib/auth.ts).
    sessionEpoch: integer("session_epoch").notNull().default(0),
  },
  (t) => [uniqueIndex("api_keys_hash").on(t.hash), index("api_keys_team").on(t.teamId)],
);

/** Index rows derived from the SessionHub: versioned, so a stale write never wins. */
export const sessions = sqliteTable(
  "sessions",
  {
    teamId: text("team_id").notNull(),
    id: text("id").notNull(),
    status: text("status").notNull(),
    title: text("title"),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, Json>>(),
    createdAt: text("created_at").notNull(),
    updatedAt: text("updated_at").notNull(),
    version: integer("version").notNull(),
  },
  (t) => [primaryKey({ columns: [t.teamId, t.id] }), index("sessions_team_created").on(t.teamId, t.createdAt)],
);

export const topics = sqliteTable(
  "topics",
  {
    teamId: text("team_id").notNull(),
    sessionId: text("session_id").notNull(),
    id: text("id").notNull(),
    status: text("status").notNull(),
    currentStep: text("current_step"),
    hypothesis: text("hypothesis"),
    createdAt: text("created_at").notNull(),
    updatedAt: text("updated_at").notNull(),
    version: integer("version").notNull(),
  },
  (t) => [primaryKey({ columns: [t.teamId, t.sessionId, t.id] })],
);

export const alphas = sqliteTable(
  "alphas",
  {
    teamId: text("team_id").notNull(),
    sessionId: text("session_id").notNull(),
    topicId: text("topic_id").notNull(),
    id: text("id").notNull(),
    name: text("name"),
    expression: text("expression"),
    metrics: text("metrics", { mode: "json" }).$type<Record<string, number>>(),
    passed: integer("passed", { mode: "boolean" }),
    registeredAt: text("registered_at"),
    evaluatedAt: text("evaluated_at"),
    version: integer("version").notNull(),
  },
  (t) => [primaryKey({ columns: [t.teamId, t.sessionId, t.topicId, t.id] })],
);

/** Callback messages that exhausted their retries, kept for people to inspect. */
export const deadLetters = sqliteTable(
  "dead_letters",
  {
    id: text("id").primaryKey(),
    teamId: text("team_id").notNull(),
    queue: text("queue").notNull(),
    messageId: text("message_id").notNull(),
    body: text("body", { mode: "json" }).notNull(),
    attempts: integer("attempts").notNull(),
    receivedAt: text("received_at").notNull(),
  },
  (t) => [index("dead_letters_team").on(t.teamId, t.receivedAt), uniqueIndex("dead_letters_message").on(t.messageId)],
);

/** Standard Webhooks ids seen within the tolerance window: a second use is a replay. */
export const webhookIds = sqliteTable(
  "webhook_ids",
  {
    teamId: text("team_id").notNull(),
    webhookId: text("webhook_id").notNull(),
    seenAt: integer("seen_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.teamId, t.webhookId] }), index("webhook_ids_seen").on(t.seenAt)],
);

/** One row per workspace file, for per-team storage accounting (R2 has no cheap totals). */
export const workspaceFiles = sqliteTable(
  "workspace_files",
  {
    teamId: text("team_id").notNull(),
    sessionId: text("session_id").notNull(),
    topicId: text("topic_id").notNull(),
    path: text("path").notNull(),
    size: integer("size").notNull(),
    etag: text("etag").notNull(),
    uploadedAt: text("uploaded_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.teamId, t.sessionId, t.topicId, t.path] })],
);

/**
 * The task queue (src/domain/tasks.ts has its rules). Times are RFC 3339 UTC strings of one
 * width (`toISOString`), so they compare as text. `priority` is a rank (critical = 0) so the
 * claim sorts by it; `attempts` counts claims; `worker_id` is the worker that claimed it last;
 * `blocked_by` names the failed or cancelled task that keeps a `blocked` task from running;
 * `completed_at` is when it ended (completed, failed or cancelled); cost, tokens and duration
 * add up over attempts.
 */
export const tasks = sqliteTable(
  "tasks",
  {
    teamId: text("team_id").notNull(),
    id: text("id").notNull(),
    title: text("title").notNull(),
    description: text("description").notNull().default(""),
    role: text("role").notNull(),
    priority: integer("priority").notNull(),
    dependsOn: text("depends_on", { mode: "json" }).notNull().$type<string[]>(),
    status: text("status").notNull(),
    blockedBy: text("blocked_by"),
    maxAttempts: integer("max_attempts").notNull().default(3),
    attempts: integer("attempts").notNull().default(0),
    availableAt: text("available_at").notNull(),
    idempotencyKey: text("idempotency_key"),
    source: text("source").notNull(),
    workerId: text("worker_id"),
    leaseId: text("lease_id"),
    leaseExpiresAt: text("lease_expires_at"),
    result: text("result"),
    costUsd: real("cost_usd").notNull().default(0),
    tokens: integer("tokens").notNull().default(0),
    durationMs: integer("duration_ms").notNull().default(0),
    createdAt: text("created_at").notNull(),
    updatedAt: text("updated_at").notNull(),
    claimedAt: text("claimed_at"),
    completedAt: text("completed_at"),
    version: rowVersion(),
  },
  (t) => [
    primaryKey({ columns: [t.teamId, t.id] }),
    // The claim: equality on team, status and role, then the claim order straight off the index
    // (rowid, implicitly last, breaks ties between tasks created in the same millisecond).
    index("tasks_claim").on(t.teamId, t.status, t.role, t.priority, t.createdAt),
    index("tasks_team_created").on(t.teamId, t.createdAt),
    // The cron's sweep of expired leases across teams; unleased tasks have NULL here.
    index("tasks_lease_expiry").on(t.leaseExpiresAt),
    index("tasks_blocked_by").on(t.teamId, t.blockedBy),
    // A claim finds its own row by lease (recordClaim, claimLimits, a retried claim) in one
    // probe, whatever the worker's history.
    index("tasks_team_worker_lease").on(t.teamId, t.workerId, t.leaseId),
    // SQLite lets many NULLs through a unique index: only given keys are unique.
    uniqueIndex("tasks_idempotency").on(t.teamId, t.idempotencyKey),
  ],
);

/**
 * Every claim of a task: which worker held it under which lease, and when. The ledger below
 * counts an attempt's spend from here, so an agent whose lease expired (or whose task was
 * claimed again) before it reported still has what it spent counted, once.
 */
export const taskAttempts = sqliteTable(
  "task_attempts",
  {
    teamId: text("team_id").notNull(),
    taskId: text("task_id").notNull(),
    leaseId: text("lease_id").notNull(),
    workerId: text("worker_id").notNull().default(""),
    role: text("role").notNull(),
    claimedAt: text("claimed_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.teamId, t.taskId, t.leaseId, t.claimedAt] })],
);

/**
 * What each attempt reported spending, as it ended (complete, fail or release): the ledger
 * the daily budget and `GET /v1/costs` sum. Per attempt, dated by the UTC day it was
 * reported and counted to the worker that ran it, so a retry, a cancel or an attempt that
 * failed and went back to the queue never takes spend out of a day or moves it to another
 * worker. `id` is `{task_id}:{lease_id}:{claimed_at}`: one per claim (task_attempts), so a
 * client's retries, or a report arriving after the lease ended, record an attempt once. Rows written before the ledger
 * existed have `:legacy` ids (one per task; migrations/0009_task_costs.sql says how dated).
 */
export const taskCosts = sqliteTable(
  "task_costs",
  {
    teamId: text("team_id").notNull(),
    id: text("id").notNull(),
    taskId: text("task_id").notNull(),
    workerId: text("worker_id").notNull().default(""),
    role: text("role").notNull(),
    /** YYYY-MM-DD, UTC. */
    day: text("day").notNull(),
    costUsd: real("cost_usd").notNull().default(0),
    tokens: integer("tokens").notNull().default(0),
    durationMs: integer("duration_ms").notNull().default(0),
    reportedAt: text("reported_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.teamId, t.id] }),
    // The claim's daily budget sums today's cost from this index alone (covering).
    index("task_costs_team_day").on(t.teamId, t.day, t.costUsd),
    // A worker's cost so far (GET /v1/workers).
    index("task_costs_team_worker").on(t.teamId, t.workerId, t.costUsd),
  ],
);

/**
 * The team's workers as they last reported themselves (a heartbeat, or a claim). `lost` is
 * set by the cron: the worker's lease expired, or it has not been seen for 5 minutes.
 */
export const workers = sqliteTable(
  "workers",
  {
    teamId: text("team_id").notNull(),
    id: text("id").notNull(),
    role: text("role").notNull(),
    status: text("status").notNull(),
    currentTask: text("current_task"),
    tasksCompleted: integer("tasks_completed").notNull().default(0),
    lastSeenAt: text("last_seen_at").notNull(),
    createdAt: text("created_at").notNull(),
    version: rowVersion(),
  },
  (t) => [primaryKey({ columns: [t.teamId, t.id] }), index("workers_last_seen").on(t.lastSeenAt)],
);

/**
 * Questions a worker asks a person about the task it holds. `answered_by` is the id of the
 * key that answered. One open question at a time per task (asking moves the task to
 * `waiting_input`, and only a `claimed` or `running` task may ask).
 */
export const questions = sqliteTable(
  "questions",
  {
    teamId: text("team_id").notNull(),
    id: text("id").notNull(),
    taskId: text("task_id").notNull(),
    workerId: text("worker_id").notNull(),
    text: text("text").notNull(),
    status: text("status").notNull(),
    answer: text("answer"),
    answeredBy: text("answered_by"),
    createdAt: text("created_at").notNull(),
    answeredAt: text("answered_at"),
    version: rowVersion(),
  },
  (t) => [
    primaryKey({ columns: [t.teamId, t.id] }),
    // The list by status, newest first; and the open questions of a task.
    index("questions_team_status").on(t.teamId, t.status, t.createdAt),
    index("questions_team_created").on(t.teamId, t.createdAt),
    index("questions_team_task").on(t.teamId, t.taskId, t.status),
  ],
);

/**
 * Worker logs: the lines live in R2, one JSONL object per batch (R2 cannot append); this is
 * the index that finds a tail without listing R2. `seq` orders a team's batches: each insert
 * takes max(the team's last seq + 1, the time in ms) in one statement, and D1 runs one
 * statement at a time, so a batch that becomes visible never has a lower seq than one already
 * visible (a follower's cursor never skips a batch), seqs never go back even once retention
 * has deleted every row, and no team learns from its seqs how much other teams log.
 * `bytes` is the object's size, so a read can bound what it fetches before fetching it.
 */
export const logBatches = sqliteTable(
  "log_batches",
  {
    teamId: text("team_id").notNull(),
    seq: integer("seq").notNull(),
    id: text("id").notNull(),
    workerId: text("worker_id").notNull(),
    taskId: text("task_id"),
    r2Key: text("r2_key").notNull(),
    lineCount: integer("line_count").notNull(),
    bytes: integer("bytes").notNull(),
    createdAt: text("created_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.teamId, t.seq] }),
    // A worker's tail (optionally of one task), and a task's tail.
    index("log_batches_worker").on(t.teamId, t.workerId, t.seq),
    index("log_batches_task").on(t.teamId, t.taskId, t.seq),
    // The cron's retention sweep takes the oldest batches in this order, straight off the index.
    index("log_batches_created").on(t.createdAt, t.teamId, t.seq),
  ],
);

/**
 * Outgoing webhooks a team registers for questions asked, tasks failed and the budget spent.
 * The URL is a secret (Slack and Discord put the credential in it) and so is the signing
 * secret of generic JSON channels: both are AES-GCM ciphertexts under SECRETS_KEY.
 */
export const notificationChannels = sqliteTable(
  "notification_channels",
  {
    teamId: text("team_id").notNull(),
    id: text("id").notNull(),
    name: text("name").notNull(),
    url: text("url").notNull(),
    urlHint: text("url_hint").notNull(),
    format: text("format").notNull(),
    events: text("events", { mode: "json" }).notNull().$type<string[]>(),
    signingSecret: text("signing_secret"),
    createdAt: text("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.teamId, t.id] })],
);

/** One event sent to one channel: at most one per (channel, event), retried until it lands or gives up. */
export const notificationDeliveries = sqliteTable(
  "notification_deliveries",
  {
    teamId: text("team_id").notNull(),
    id: text("id").notNull(),
    channelId: text("channel_id").notNull(),
    eventId: text("event_id").notNull(),
    eventType: text("event_type").notNull(),
    event: text("event", { mode: "json" }).notNull().$type<Record<string, unknown>>(),
    status: text("status").notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    createdAt: text("created_at").notNull(),
    updatedAt: text("updated_at").notNull(),
    deliveredAt: text("delivered_at"),
  },
  (t) => [
    primaryKey({ columns: [t.teamId, t.id] }),
    uniqueIndex("notification_deliveries_once").on(t.teamId, t.channelId, t.eventId),
    // A channel's deliveries, newest first.
    index("notification_deliveries_channel").on(t.teamId, t.channelId, t.createdAt),
    // The cron: pending ones left untouched, and ended ones past retention.
    index("notification_deliveries_status").on(t.status, t.updatedAt),
  ],
);
