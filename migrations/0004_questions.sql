CREATE TABLE `questions` (
	`team_id` text NOT NULL,
	`id` text NOT NULL,
	`task_id` text NOT NULL,
	`worker_id` text NOT NULL,
	`text` text NOT NULL,
	`status` text NOT NULL,
	`answer` text,
	`answered_by` text,
	`created_at` text NOT NULL,
	`answered_at` text,
	PRIMARY KEY(`team_id`, `id`)
);
--> statement-breakpoint
CREATE INDEX `questions_team_status` ON `questions` (`team_id`,`status`,`created_at`);--> statement-breakpoint
CREATE INDEX `questions_team_created` ON `questions` (`team_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `questions_team_task` ON `questions` (`team_id`,`task_id`,`status`);