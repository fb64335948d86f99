-- Every task, question and worker row counts its writes (src/db/schema.ts rowVersion): the team
-- stream carries the count with each record, so the TeamHub can drop an event that arrives after
-- one about a later write to the same row. Rows written before start at 0.
ALTER TABLE `questions` ADD `version` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `tasks` ADD `version` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `workers` ADD `version` integer DEFAULT 0 NOT NULL;