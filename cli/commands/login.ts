import { Api, ApiFailure } from "../api";
import type { TeamSettings } from "../api-types";
import { configPath, DEFAULT_URL, normalizeUrl, readStoredConfig, saveConfig } from "../config";
import { action, type CliCommand } from "../context";
import { UsageError } from "../errors";
import { printJson } from "../output";
import { textOrStdin } from "../options";

/**
 * `switchboard login --url URL --key KEY`: checks the key against the Worker and stores both
 * in the user's config dir (0600). GET /v1/team needs an operator key; a 403 still proves the
 * key is the team's (read and agent keys are fine for the read commands), so it is stored with
 * a note that answering questions will need an operator key.
 */
export const loginCommand: CliCommand = {
  name: "login",
  register(program, ctx) {
    program
      .command("login")
      .summary("check a key and store it with the URL")
      .description(
        `Check the key against the Worker, then store the URL and key in ${configPath(ctx.env)} (mode 0600).\nSWITCHBOARD_URL and SWITCHBOARD_API_KEY, when set, override what is stored.`,
      )
      .requiredOption("--key <key>", "the API key, or - to read it from stdin (keeps it out of the shell history)")
      .option("--url <url>", `the Worker's base URL (default: SWITCHBOARD_URL, else the stored one, else ${DEFAULT_URL})`)
      .option("--json", "print the result as JSON (never the key)")
      .action(
        action(ctx, async (opts: { key: string; url?: string; json?: boolean }) => {
          const key = (await textOrStdin(ctx, opts.key, "the key")).trim();
          if (!key || /\s/.test(key)) throw new UsageError("the key is empty or has spaces in it");
          const path = configPath(ctx.env);
          const stored = storedUrl(ctx.env);
          // Where the URL came from, named in its error and in the hint of a failed check.
          const from = opts.url !== undefined ? "flag" : ctx.env.SWITCHBOARD_URL ? "env" : stored ? "config" : "default";
          const given = opts.url ?? (ctx.env.SWITCHBOARD_URL || stored) ?? DEFAULT_URL;
          const url = normalizeUrl(given, from === "flag" ? "--url" : from === "env" ? "SWITCHBOARD_URL" : `the url in ${path}`);
          const api = new Api({ baseUrl: url, apiKey: key, source: { url: from, apiKey: "config" }, path });
          let team: TeamSettings | null = null;
          try {
            team = await api.get<TeamSettings>("/v1/team");
          } catch (e) {
            if (!(e instanceof ApiFailure && e.status === 403)) {
              if (e instanceof ApiFailure && e.status === 401) throw new ApiFailure(401, e.problem, e.message, `${url} does not know this key: check it (an operator makes keys with POST /v1/keys; \`npm start\` prints one for the local dev team)`);
              throw e;
            }
          }
          saveConfig({ url, api_key: key }, ctx.env);
          const overridden = [ctx.env.SWITCHBOARD_URL ? "SWITCHBOARD_URL" : null, ctx.env.SWITCHBOARD_API_KEY ? "SWITCHBOARD_API_KEY" : null].filter(Boolean);
          if (opts.json) {
            printJson(ctx.out, { url, team: team ? { id: team.id, name: team.name } : null, operator: team !== null, config_path: path, overridden_by: overridden });
          } else {
            const c = ctx.color;
            ctx.out(team ? `Logged in to ${c.bold(url)} as team ${c.bold(team.name)} (${team.id}).\n` : `Key accepted by ${c.bold(url)}; it is not an operator key, so \`switchboard respond\`, \`cancel\` and \`retry\` will be refused.\n`);
            ctx.out(`Saved to ${path}\n`);
          }
          if (overridden.length > 0) ctx.err(`note: ${overridden.join(" and ")} ${overridden.length > 1 ? "are" : "is"} set in this shell and ${overridden.length > 1 ? "override" : "overrides"} what was saved\n`);
          return 0;
        }),
      );
  },
};

/** The URL saved before, if the file can be read at all (login rewrites a broken one). */
function storedUrl(env: NodeJS.ProcessEnv): string | undefined {
  try {
    return readStoredConfig(env)?.url;
  } catch {
    return undefined;
  }
}
