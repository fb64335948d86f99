CREATE TABLE `workspace_files` (
	`team_id` text NOT NULL,
	`session_id` text NOT NULL,
	`topic_id` text NOT NULL,
	`path` text NOT NULL,
	`size` integer NOT NULL,
	`etag` text NOT NULL,
	`uploaded_at` text NOT NULL,
	PRIMARY KEY(`team_id`, `session_id`, `topic_id`, `path`)
);
