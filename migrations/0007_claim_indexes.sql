DROP INDEX `tasks_team_completed`;--> statement-breakpoint
DROP INDEX `tasks_team_worker`;--> statement-breakpoint
CREATE INDEX `tasks_team_spent` ON `tasks` (`team_id`,`completed_at`,`status`,`cost_usd`) WHERE completed_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX `tasks_team_worker_lease` ON `tasks` (`team_id`,`worker_id`,`lease_id`);