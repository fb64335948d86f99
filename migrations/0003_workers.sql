CREATE TABLE `workers` (
	`team_id` text NOT NULL,
	`id` text NOT NULL,
	`role` text NOT NULL,
	`status` text NOT NULL,
	`current_task` text,
	`tasks_completed` integer DEFAULT 0 NOT NULL,
	`last_seen_at` text NOT NULL,
	`created_at` text NOT NULL,
	PRIMARY KEY(`team_id`, `id`)
);
--> statement-breakpoint
CREATE INDEX `workers_last_seen` ON `workers` (`last_seen_at`);--> statement-breakpoint
CREATE INDEX `tasks_team_completed` ON `tasks` (`team_id`,`completed_at`);--> statement-breakpoint
CREATE INDEX `tasks_team_worker` ON `tasks` (`team_id`,`worker_id`);