import { createApp } from "./app";
import { handleScheduled } from "./cron/scheduled";
import { handleQueue } from "./queue/consumer";

export { SessionHub } from "../durable-objects/session-hub";
export { TopicHub } from "../durable-objects/topic-hub";
export { TeamHub } from "../durable-objects/team-hub";

const app = createApp();

export default {
  fetch: app.fetch,
  queue: handleQueue,
  scheduled: handleScheduled,
} satisfies ExportedHandler<Env>;
