import { type ResolvedConfig, urlSource } from "./config";
import { bodyExcerpt, CliError, describeProblem, networkFailure, type Problem } from "./errors";

/** The API refused: exit 1, with the problem in one line and a hint where one helps. */
export class ApiFailure extends CliError {
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
    message: string,
    hint?: string,
  ) {
    super(message, 1, hint);
  }
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

type Query = Record<string, string | number | undefined>;

const TIMEOUT_MS = 30_000;

/**
 * The people's client: one request at a time, no retries (a person is watching and can run
 * the command again), every refusal turned into an ApiFailure that says what to do.
 */
export class Api {
  private readonly fetch: typeof fetch;
  constructor(
    readonly config: Pick<ResolvedConfig, "baseUrl" | "apiKey" | "source" | "path">,
    fetchImpl?: typeof fetch,
  ) {
    this.fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
  }

  async get<T>(path: string, query: Query = {}, signal?: AbortSignal): Promise<T> {
    return (await this.request<T>("GET", path, { query, signal })).body;
  }

  /** A POST; the status tells a 201 (created) from a 200 (found by idempotency key). */
  post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<{ status: number; body: T }> {
    return this.request<T>("POST", path, { body, signal });
  }

  /** Every page of a list, up to `max` items; `truncated` says whether more were left. */
  async listAll<T>(path: string, query: Query = {}, max = 10_000, signal?: AbortSignal): Promise<{ items: T[]; truncated: boolean }> {
    const { items, next_cursor } = await this.upTo<T>(path, query, max, signal);
    return { items, truncated: next_cursor !== null };
  }

  /** Pages of a list until `max` items or its end: the items, and the cursor to read on from (null at the end), as `--json` prints them. */
  async upTo<T>(path: string, query: Query = {}, max = 10_000, signal?: AbortSignal): Promise<Page<T>> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const page: Page<T> = await this.get<Page<T>>(path, { ...query, limit: Math.min(200, max - items.length), cursor: cursor ?? undefined }, signal);
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && items.length < max);
    return { items, next_cursor: cursor };
  }

  /**
   * Opens a text/event-stream: only the wait for the headers is bounded, since the body is
   * meant to stay open; a refusal is an ApiFailure like any request's.
   */
  async openStream(path: string, lastEventId: string | null, signal: AbortSignal): Promise<Response> {
    const url = new URL(path, `${this.config.baseUrl.replace(/\/+$/, "")}/`);
    const headers: Record<string, string> = { Authorization: `Bearer ${this.config.apiKey}`, Accept: "text/event-stream", "Cache-Control": "no-cache" };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    const connect = new AbortController();
    const timer = setTimeout(() => connect.abort(new DOMException(`no answer in ${TIMEOUT_MS / 1000} s`, "TimeoutError")), TIMEOUT_MS);
    let res: Response;
    try {
      res = await this.fetch(url, { headers, signal: AbortSignal.any([signal, connect.signal]) });
    } catch (e) {
      if (signal.aborted) throw e;
      throw unreachable(this.config, e);
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) throw failure(res, await res.text().catch(() => ""), this.config);
    return res;
  }

  async request<T>(method: string, path: string, options: { query?: Query; body?: unknown; signal?: AbortSignal } = {}): Promise<{ status: number; body: T }> {
    const url = new URL(path, `${this.config.baseUrl.replace(/\/+$/, "")}/`);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined && v !== "") url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { Authorization: `Bearer ${this.config.apiKey}`, Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const signal = options.signal ? AbortSignal.any([options.signal, AbortSignal.timeout(TIMEOUT_MS)]) : AbortSignal.timeout(TIMEOUT_MS);
    let res: Response;
    try {
      res = await this.fetch(url, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body), signal });
    } catch (e) {
      if (options.signal?.aborted) throw e;
      throw unreachable(this.config, e);
    }
    const text = await res.text();
    if (!res.ok) throw failure(res, text, this.config);
    try {
      return { status: res.status, body: (text === "" ? null : JSON.parse(text)) as T };
    } catch {
      const type = res.headers.get("Content-Type")?.split(";")[0]?.trim();
      throw new CliError(`${method} ${url.pathname} answered ${res.status}${type ? ` (${type})` : ""} with something that is not JSON: ${bodyExcerpt(text)}`, 1, notSwitchboard(this.config.baseUrl));
    }
  }
}

function unreachable(config: Api["config"], error: unknown): CliError {
  const why = error instanceof Error && error.name === "TimeoutError" ? `no answer in ${TIMEOUT_MS / 1000} s` : (networkFailure(error) ?? (error instanceof Error ? error.message : String(error)));
  return new CliError(`could not reach ${config.baseUrl}: ${why}`, 1, `is the Worker running there? \`npm start\` runs one locally. The URL is ${urlSource(config)}: SWITCHBOARD_URL or \`switchboard login --url URL --key KEY\` says where it is`);
}

/** `error: <title>: <detail>` from problem+json (with field errors), and a hint for the common fixes. */
function failure(res: Response, text: string, config: Api["config"]): ApiFailure {
  const { problem, message } = describeProblem(res.status, text, res.statusText, res.headers.get("Content-Type"));
  return new ApiFailure(res.status, problem, message, hintFor(res, problem, config));
}

/** Every refusal of a Switchboard API is problem+json: an answer without it came from something else. */
function notSwitchboard(baseUrl: string): string {
  return `${baseUrl} may not be a Switchboard API (its errors are problem+json): check SWITCHBOARD_URL or \`switchboard login --url URL --key KEY\``;
}

function hintFor(res: Response, problem: Problem | null, config: Api["config"]): string | undefined {
  if (!problem?.title) return notSwitchboard(config.baseUrl);
  const keyFrom = config.source.apiKey === "env" ? "SWITCHBOARD_API_KEY" : config.path;
  if (res.status === 401) return `the key from ${keyFrom} was refused by ${config.baseUrl}: run \`switchboard login --url URL --key KEY\` with a valid key${config.source.apiKey === "env" ? ", or fix or unset SWITCHBOARD_API_KEY" : ""}`;
  if (res.status === 403) {
    const scope = /with the (\w+) scope/.exec(problem?.detail ?? "")?.[1] ?? "a wider";
    return `the key from ${keyFrom} lacks the ${scope} scope: use a key that has it (an operator makes one with POST /v1/keys {"name":"…","scopes":["${scope}"]})`;
  }
  if (res.status === 429) {
    const after = res.headers.get("Retry-After");
    return after ? `try again in ${after} s` : undefined;
  }
  return undefined;
}

/** The client for the URL and key `loadConfig` resolves (env vars over `switchboard login`'s file). */
export function apiFor(config: ResolvedConfig, fetchImpl?: typeof fetch): Api {
  return new Api(config, fetchImpl);
}
