CREATE TABLE `tasks` (
	`team_id` text NOT NULL,
	`id` text NOT NULL,
	`title` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`role` text NOT NULL,
	`priority` integer NOT NULL,
	`depends_on` text NOT NULL,
	`status` text NOT NULL,
	`blocked_by` text,
	`max_attempts` integer DEFAULT 3 NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`available_at` text NOT NULL,
	`idempotency_key` text,
	`source` text NOT NULL,
	`worker_id` text,
	`lease_id` text,
	`lease_expires_at` text,
	`result` text,
	`cost_usd` real DEFAULT 0 NOT NULL,
	`tokens` integer DEFAULT 0 NOT NULL,
	`duration_ms` integer DEFAULT 0 NOT NULL,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	`claimed_at` text,
	`completed_at` text,
	PRIMARY KEY(`team_id`, `id`)
);
--> statement-breakpoint
CREATE INDEX `tasks_claim` ON `tasks` (`team_id`,`status`,`role`,`priority`,`created_at`);--> statement-breakpoint
CREATE INDEX `tasks_team_created` ON `tasks` (`team_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `tasks_lease_expiry` ON `tasks` (`lease_expires_at`);--> statement-breakpoint
CREATE INDEX `tasks_blocked_by` ON `tasks` (`team_id`,`blocked_by`);--> statement-breakpoint
CREATE UNIQUE INDEX `tasks_idempotency` ON `tasks` (`team_id`,`idempotency_key`);