import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { MAX_JSON_DEPTH, unfitJsonAt } from "../domain/json";

/** The closed set of problems the API answers with, and their statuses. */
export const PROBLEMS = {
  validation: { status: 400, title: "Invalid request" },
  bad_signature: { status: 401, title: "Invalid signature" },
  unauthorized: { status: 401, title: "Unauthorized" },
  forbidden: { status: 403, title: "Forbidden" },
  not_found: { status: 404, title: "Not found" },
  conflict: { status: 409, title: "Conflict" },
  length_required: { status: 411, title: "Length required" },
  too_large: { status: 413, title: "Payload too large" },
  unsupported_media_type: { status: 415, title: "Unsupported media type" },
  rate_limited: { status: 429, title: "Too many requests" },
  internal: { status: 500, title: "Internal error" },
  unavailable: { status: 503, title: "Service unavailable" },
} as const satisfies Record<string, { status: ContentfulStatusCode; title: string }>;

export type ProblemCode = keyof typeof PROBLEMS;

export interface FieldError {
  path: string;
  message: string;
}

/** The one error the app throws; `onError` turns it into application/problem+json. */
export class ApiError extends HTTPException {
  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly errors: FieldError[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(PROBLEMS[code].status, { message: detail });
  }
}

export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join(".") || "(body)", message: i.message }));
}

export function validationError(error: z.ZodError, where = "body"): ApiError {
  return new ApiError("validation", `The request ${where} is not valid.`, fieldErrors(error));
}

export function problemBody(code: ProblemCode, detail: string, requestId: string, errors: FieldError[] = []) {
  return {
    type: `https://switchboard.dev/problems/${code.replaceAll("_", "-")}`,
    title: PROBLEMS[code].title,
    status: PROBLEMS[code].status,
    detail,
    errors,
    request_id: requestId,
  };
}

export function problemResponse(code: ProblemCode, detail: string, requestId: string, errors: FieldError[] = [], headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(problemBody(code, detail, requestId, errors)), {
    status: PROBLEMS[code].status,
    headers: { "Content-Type": "application/problem+json", ...(requestId ? { "X-Request-Id": requestId } : {}), ...headers },
  });
}

/**
 * 400 naming where a client's JSON breaks a rule every request shares (domain/json.ts
 * `unfitJsonAt`); with `depthOnly`, only the depth (a body that is someone else's, as a
 * GitHub delivery, is not refused for its strings).
 */
export function refuseUnfitJson(body: unknown, depthOnly = false): void {
  const unfit = unfitJsonAt(body, !depthOnly);
  if (unfit === null) return;
  const { path, message, rule } = unfit;
  const detail = rule === "depth" ? `The JSON body nests deeper than ${MAX_JSON_DEPTH} levels.` : `The JSON body is not fit for any request: ${message} at ${path}.`;
  throw new ApiError("validation", detail, [{ path, message }]);
}
