CREATE TABLE `alphas` (
	`team_id` text NOT NULL,
	`session_id` text NOT NULL,
	`topic_id` text NOT NULL,
	`id` text NOT NULL,
	`name` text,
	`expression` text,
	`metrics` text,
	`passed` integer,
	`registered_at` text,
	`evaluated_at` text,
	`version` integer NOT NULL,
	PRIMARY KEY(`team_id`, `session_id`, `topic_id`, `id`)
);
--> statement-breakpoint
CREATE TABLE `api_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`team_id` text NOT NULL,
	`name` text NOT NULL,
	`scopes` text NOT NULL,
	`hash` text NOT NULL,
	`prefix` text NOT NULL,
	`created_at` text NOT NULL,
	`last_used_at` text,
	FOREIGN KEY (`team_id`) REFERENCES `teams`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_keys_hash` ON `api_keys` (`hash`);--> statement-breakpoint
CREATE INDEX `api_keys_team` ON `api_keys` (`team_id`);--> statement-breakpoint
CREATE TABLE `dead_letters` (
	`id` text PRIMARY KEY NOT NULL,
	`team_id` text NOT NULL,
	`queue` text NOT NULL,
	`message_id` text NOT NULL,
	`body` text NOT NULL,
	`attempts` integer NOT NULL,
	`received_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `dead_letters_team` ON `dead_letters` (`team_id`,`received_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `dead_letters_message` ON `dead_letters` (`message_id`);--> statement-breakpoint
CREATE TABLE `sessions` (
	`team_id` text NOT NULL,
	`id` text NOT NULL,
	`status` text NOT NULL,
	`title` text,
	`metadata` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	`version` integer NOT NULL,
	PRIMARY KEY(`team_id`, `id`)
);
--> statement-breakpoint
CREATE INDEX `sessions_team_created` ON `sessions` (`team_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `teams` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`signing_secret` text,
	`github_webhook_secret` text,
	`github_token` text,
	`daily_budget_usd` real,
	`max_running` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `topics` (
	`team_id` text NOT NULL,
	`session_id` text NOT NULL,
	`id` text NOT NULL,
	`status` text NOT NULL,
	`current_step` text,
	`hypothesis` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	`version` integer NOT NULL,
	PRIMARY KEY(`team_id`, `session_id`, `id`)
);
--> statement-breakpoint
CREATE TABLE `webhook_ids` (
	`team_id` text NOT NULL,
	`webhook_id` text NOT NULL,
	`seen_at` integer NOT NULL,
	PRIMARY KEY(`team_id`, `webhook_id`)
);
--> statement-breakpoint
CREATE INDEX `webhook_ids_seen` ON `webhook_ids` (`seen_at`);