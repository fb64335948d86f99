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
  403: { description: "The key lacks the scope" },
  404: { description: "Not found, or another team's" },
} as const;

export const security = [{ bearer: [] }];

/** A JSON body or response for `createRoute`: `{ description, ...json(schema) }`. */
export const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
