// Pure helpers for scripts/preview.mjs, tested in test/node/preview-config.test.mjs.

/** The names of one pull request's preview Worker and resources. */
export function previewNames(pr) {
  const base = `switchboard-pr-${pr}`;
  return { worker: base, database: base, bucket: base, queue: `${base}-callbacks`, deadLetterQueue: `${base}-callbacks-dlq` };
}

/**
 * Turns wrangler.toml into a preview config: the top-level Worker with its name and every
 * resource replaced by the preview's own, and the [env.*] sections dropped.
 */
export function previewConfig(toml, names, databaseId) {
  const top = toml.split(/^\[env\./m)[0];
  return top
    .replace(/^name = ".*"$/m, `name = "${names.worker}"`)
    .replace(/^database_name = ".*"$/m, `database_name = "${names.database}"`)
    .replace(/^database_id = ".*"$/m, `database_id = "${databaseId}"`)
    .replace(/^bucket_name = ".*"$/m, `bucket_name = "${names.bucket}"`)
    .replaceAll(/^queue = "switchboard-callbacks-dlq"$/gm, `queue = "${names.deadLetterQueue}"`)
    .replaceAll(/^queue = "switchboard-callbacks"$/gm, `queue = "${names.queue}"`)
    .replace(/^dead_letter_queue = ".*"$/m, `dead_letter_queue = "${names.deadLetterQueue}"`);
}
