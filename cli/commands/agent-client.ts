import { type ClientOptions, clientOptionsFromEnv, HttpError, NetworkError, SentinelStoreError, TimeoutError } from "../client";
import { loadConfig, urlSource } from "../config";
import { CliError, UsageError } from "../errors";
import { z } from "zod";

/**
 * The agents' client options: the URL and key as `loadConfig` resolves them (env vars over
 * `switchboard login`'s file), the signing secret and sentinel target from the environment.
 */
export function agentClientOptions(env: NodeJS.ProcessEnv): ClientOptions {
  const { baseUrl, apiKey } = loadConfig(env);
  return clientOptionsFromEnv({ ...env, SWITCHBOARD_URL: baseUrl, SWITCHBOARD_API_KEY: apiKey });
}

/**
 * What `emit` and `run` print when the server (or the sentinel store) refused an event: `error: <title>: <detail>`
 * and a hint naming the fix, as the people's commands do. Anything else is passed on.
 */
export function agentFailure(error: unknown, env: NodeJS.ProcessEnv): unknown {
  // Checked before anything was sent: the event the command line made is not valid (exit 2).
  if (error instanceof z.ZodError) {
    const issues = error.issues.map((i) => `${i.path.join(".") || "(event)"}: ${i.message}`);
    const hint = error.issues.some((i) => i.path[0] === "topic_id")
      ? "a topic-level event needs --topic ID"
      : "--data must be a JSON object with the fields of that event type (see /openapi.json, POST /v1/callbacks)";
    return new UsageError(`the event is not valid: ${issues.join("; ")}`, hint);
  }
  if (error instanceof SentinelStoreError) return new CliError(error.message, 1, sentinelHint(error, env));
  if (error instanceof NetworkError || error instanceof TimeoutError) return new CliError(error.message, 1, unreachableHint(env));
  if (!(error instanceof HttpError)) return error;
  return new CliError(error.message, 1, agentHint(error, env));
}

function agentHint(error: HttpError, env: NodeJS.ProcessEnv): string | undefined {
  const type = error.problem?.type ?? "";
  if (error.status === 401 && type.endsWith("/bad-signature")) {
    return env.SWITCHBOARD_SIGNING_SECRET
      ? "SWITCHBOARD_SIGNING_SECRET does not sign as the team's signing secret does: set it to the secret PATCH /v1/team was given (and check this machine's clock: a signature is good for 5 minutes)"
      : "the team signs its callbacks: set SWITCHBOARD_SIGNING_SECRET to the team's signing secret (the one PATCH /v1/team was given)";
  }
  if (error.status === 401) return "the API key was refused: set SWITCHBOARD_API_KEY to a valid key with the agent scope (or run `switchboard login`)";
  if (error.status === 403) return "the key lacks the agent scope: agents need a key with it (POST /v1/keys {\"name\":\"…\",\"scopes\":[\"agent\"]})";
  if (error.status === 404) return "the session does not exist in this key's team: create it first (POST /v1/sessions {\"id\":\"…\"})";
  return undefined;
}

/** The API could not be reached: where the URL came from, and its value, so a wrong one shows. */
function unreachableHint(env: NodeJS.ProcessEnv): string {
  let where: string;
  try {
    where = urlSource(loadConfig(env));
  } catch {
    where = `SWITCHBOARD_URL (${env.SWITCHBOARD_URL ?? "unset"})`;
  }
  return `is the Worker running at ${where}? \`npm start\` runs one locally; SWITCHBOARD_URL (or \`switchboard login\`) says where it is`;
}

/** The sentinel store's answer is about its settings, not the API's key or sessions. */
function sentinelHint(error: SentinelStoreError, env: NodeJS.ProcessEnv): string {
  const unreachable = "the API was unreachable too: check SWITCHBOARD_URL";
  if (error.status === null) return `could not reach SWITCHBOARD_SENTINEL_ENDPOINT (${env.SWITCHBOARD_SENTINEL_ENDPOINT ?? "unset"}): check it; ${unreachable}`;
  if (error.status === 404 || error.code === "NoSuchBucket") return `no bucket ${env.SWITCHBOARD_SENTINEL_BUCKET ?? ""} at SWITCHBOARD_SENTINEL_ENDPOINT (${env.SWITCHBOARD_SENTINEL_ENDPOINT ?? "unset"}): check SWITCHBOARD_SENTINEL_BUCKET and the endpoint's account; ${unreachable}`;
  if (error.status === 401 || error.status === 403) return `the sentinel store refused the credentials: check SWITCHBOARD_SENTINEL_ACCESS_KEY_ID and SWITCHBOARD_SENTINEL_SECRET_ACCESS_KEY (an R2 API token that may write to the bucket); ${unreachable}`;
  return `check the SWITCHBOARD_SENTINEL_* settings (endpoint, bucket, keys, SWITCHBOARD_SENTINEL_REGION); ${unreachable}`;
}
