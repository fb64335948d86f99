CREATE TABLE `task_costs` (
	`team_id` text NOT NULL,
	`id` text NOT NULL,
	`task_id` text NOT NULL,
	`worker_id` text DEFAULT '' NOT NULL,
	`role` text NOT NULL,
	`day` text NOT NULL,
	`cost_usd` real DEFAULT 0 NOT NULL,
	`tokens` integer DEFAULT 0 NOT NULL,
	`duration_ms` integer DEFAULT 0 NOT NULL,
	`reported_at` text NOT NULL,
	PRIMARY KEY(`team_id`, `id`)
);
--> statement-breakpoint
CREATE INDEX `task_costs_team_day` ON `task_costs` (`team_id`,`day`,`cost_usd`);--> statement-breakpoint
CREATE INDEX `task_costs_team_worker` ON `task_costs` (`team_id`,`worker_id`,`cost_usd`);--> statement-breakpoint
DROP INDEX `tasks_team_spent`;--> statement-breakpoint
-- Written by hand after drizzle-kit's statements: what tasks had spent before the ledger, one
-- row per task. A task that completed or failed is dated by its end, as the daily budget
-- counted it then. Any other (still queued, running, cancelled) is dated by its last change
-- but never today: the budget never counted such spend, and dating it on the day this runs
-- would stop every claim until midnight.
INSERT INTO `task_costs` (`team_id`, `id`, `task_id`, `worker_id`, `role`, `day`, `cost_usd`, `tokens`, `duration_ms`, `reported_at`)
SELECT `team_id`, `id` || ':legacy', `id`, coalesce(`worker_id`, ''), `role`,
  CASE WHEN `status` IN ('completed', 'failed') AND `completed_at` IS NOT NULL THEN substr(`completed_at`, 1, 10)
       ELSE min(substr(coalesce(`completed_at`, `updated_at`), 1, 10), date('now', '-1 day')) END,
  `cost_usd`, `tokens`, `duration_ms`, coalesce(`completed_at`, `updated_at`)
FROM `tasks` WHERE `cost_usd` > 0 OR `tokens` > 0 OR `duration_ms` > 0;
