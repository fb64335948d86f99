CREATE TABLE `notification_channels` (
	`team_id` text NOT NULL,
	`id` text NOT NULL,
	`name` text NOT NULL,
	`url` text NOT NULL,
	`url_hint` text NOT NULL,
	`format` text NOT NULL,
	`events` text NOT NULL,
	`signing_secret` text,
	`created_at` text NOT NULL,
	PRIMARY KEY(`team_id`, `id`)
);
--> statement-breakpoint
CREATE TABLE `notification_deliveries` (
	`team_id` text NOT NULL,
	`id` text NOT NULL,
	`channel_id` text NOT NULL,
	`event_id` text NOT NULL,
	`event_type` text NOT NULL,
	`event` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`last_status_code` integer,
	`last_error` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	`delivered_at` text,
	PRIMARY KEY(`team_id`, `id`)
);
--> statement-breakpoint
CREATE UNIQUE INDEX `notification_deliveries_once` ON `notification_deliveries` (`team_id`,`channel_id`,`event_id`);--> statement-breakpoint
CREATE INDEX `notification_deliveries_channel` ON `notification_deliveries` (`team_id`,`channel_id`,`created_at`);