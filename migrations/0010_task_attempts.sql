CREATE TABLE `task_attempts` (
	`team_id` text NOT NULL,
	`task_id` text NOT NULL,
	`lease_id` text NOT NULL,
	`worker_id` text DEFAULT '' NOT NULL,
	`role` text NOT NULL,
	`claimed_at` text NOT NULL,
	PRIMARY KEY(`team_id`, `task_id`, `lease_id`, `claimed_at`)
);
--> statement-breakpoint
-- Written by hand after drizzle-kit's statement: the attempts holding a lease now, so a
-- report that arrives after this runs and after its lease ended still finds its claim.
INSERT INTO `task_attempts` (`team_id`, `task_id`, `lease_id`, `worker_id`, `role`, `claimed_at`)
SELECT `team_id`, `id`, `lease_id`, coalesce(`worker_id`, ''), `role`, `claimed_at`
FROM `tasks` WHERE `lease_id` IS NOT NULL AND `claimed_at` IS NOT NULL;
