import { OpenAPIHono, type z } from "@hono/zod-openapi";
import type { AppEnv } from "./app-env";
import { validationError } from "./errors";

/** A router whose zod failures become the project's problem+json (never zod's raw result). */
export function newRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error, result.target === "json" ? "body" : result.target);
    },
  });
}

export const problemResponses = {
  400: { description: "Invalid input (problem+json, with field `errors`)" },
  401: { description: "No or invalid credentials" },
  403: { description: "The key lacks the scope, or a change made with the sign-in cookie came from another origin" },
  404: { description: "Not found, or another team's" },
} as const;

export const security = [{ bearer: [] }];

/** A JSON body or response for `createRoute`: `{ description, ...json(schema) }`. */
export const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });

/**
 * Every operation that takes a JSON body can be refused before its handler runs, by the
 * middleware every request passes (src/app.ts): 413 past 1 MiB, 415 for a body that is not
 * JSON. Listed on each such operation here, once, rather than in every route's definition.
 */
export function withBodyRefusals<D extends { paths?: object }>(doc: D): D {
  for (const item of Object.values(doc.paths ?? {}) as (object | undefined)[]) {
    for (const op of Object.values(item ?? {}) as { requestBody?: { content?: Record<string, unknown> }; responses?: Record<string, unknown> }[]) {
      if (!op?.requestBody?.content?.["application/json"] || !op.responses) continue;
      op.responses["413"] ??= { description: "The body is over 1 MiB (problem+json)" };
      op.responses["415"] ??= { description: "The body is not JSON: send Content-Type: application/json (problem+json)" };
    }
  }
  return doc;
}

/**
 * Every operation that takes credentials can answer 503 when the deployment lacks a usable
 * SECRETS_KEY (cookies, stream tokens and stored secrets need it: src/lib/crypto.ts) or, on
 * admin routes, ADMIN_TOKEN. Listed here once, like the body refusals above; an operation's own
 * 503 stays.
 */
export function withMisconfigured<D extends { paths?: object }>(doc: D): D {
  for (const item of Object.values(doc.paths ?? {}) as (object | undefined)[]) {
    for (const op of Object.values(item ?? {}) as { responses?: Record<string, unknown> }[]) {
      if (!op?.responses?.["401"]) continue;
      op.responses["503"] ??= { description: "The deployment is misconfigured: SECRETS_KEY (or, for admin routes, ADMIN_TOKEN) is missing or too short (problem+json)" };
    }
  }
  return doc;
}
