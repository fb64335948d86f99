import { type ClientOptions, clientOptionsFromEnv } from "../client";
import { loadConfig } from "../config";

/**
 * The agents' client options: the URL and key as `loadConfig` resolves them (env vars over
 * `switchboard login`'s file), the signing secret and sentinel target from the environment.
 */
export function agentClientOptions(env: NodeJS.ProcessEnv): ClientOptions {
  const { baseUrl, apiKey } = loadConfig(env);
  return clientOptionsFromEnv({ ...env, SWITCHBOARD_URL: baseUrl, SWITCHBOARD_API_KEY: apiKey });
}
