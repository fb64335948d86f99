CREATE TABLE `log_batches` (
	`team_id` text NOT NULL,
	`seq` integer NOT NULL,
	`id` text NOT NULL,
	`worker_id` text NOT NULL,
	`task_id` text,
	`r2_key` text NOT NULL,
	`line_count` integer NOT NULL,
	`bytes` integer NOT NULL,
	`created_at` text NOT NULL,
	PRIMARY KEY(`team_id`, `seq`)
);
--> statement-breakpoint
CREATE INDEX `log_batches_worker` ON `log_batches` (`team_id`,`worker_id`,`seq`);--> statement-breakpoint
CREATE INDEX `log_batches_task` ON `log_batches` (`team_id`,`task_id`,`seq`);--> statement-breakpoint
CREATE INDEX `log_batches_created` ON `log_batches` (`created_at`,`team_id`,`seq`);