import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { matchedRoutes } from "hono/route";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { ApiError, type ProblemCode, problemResponse, refuseUnfitJson } from "./lib/errors";
import { log } from "./lib/log";
import { newRouter, withBodyRefusals, withMisconfigured } from "./lib/openapi";
import { adminRoutes } from "./routes/admin";
import { authRoutes } from "./routes/auth";
import { callbackRoutes } from "./routes/callbacks";
import { costRoutes } from "./routes/costs";
import { githubRoutes } from "./routes/github";
import { deadLetterRoutes } from "./routes/dead-letters";
import { healthRoutes } from "./routes/health";
import { keyRoutes } from "./routes/keys";
import { logRoutes } from "./routes/logs";
import { notificationRoutes } from "./routes/notifications";
import { questionRoutes } from "./routes/questions";
import { sessionRoutes } from "./routes/sessions";
import { streamRoutes } from "./routes/streams";
import { taskLeaseRoutes } from "./routes/task-leases";
import { taskRoutes } from "./routes/tasks";
import { sentinelRoutes } from "./routes/sentinels";
import { teamRoutes } from "./routes/team";
import { workerRoutes } from "./routes/workers";
import { workspaceRoutes } from "./routes/workspace";

export const JSON_BODY_LIMIT = 1024 * 1024;

const STATUS_CODES: Record<number, ProblemCode> = {
  400: "validation",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  411: "length_required",
  413: "too_large",
  415: "unsupported_media_type",
  429: "rate_limited",
};

/** Builds the Hono app: request ids, one log line per request, JSON limits, problem+json errors. */
export function createApp() {
  const app = newRouter();

  app.use(requestId({ headerName: "X-Request-Id" }));
  app.use(async (c, next) => {
    const started = Date.now();
    await next();
    log(c.res.status >= 500 ? "error" : "info", "request", {
      request_id: c.get("requestId"),
      team_id: c.get("auth")?.team_id,
      method: c.req.method,
      path: new URL(c.req.url).pathname,
      status: c.res.status,
      duration_ms: Date.now() - started,
    });
  });

  // JSON API bodies: 415 for another content type, 413 over 1 MiB (also when chunked).
  // The workspace takes any content type up to 100 MB: it has its own checks.
  // Only for a method and path a route handles: anything else is 404 whatever its body
  // (middleware is registered with method ALL, routes with theirs).
  const isWorkspace = (path: string) => /^\/v1\/sessions\/[^/]+\/topics\/[^/]+\/workspace(\/|$)/.test(path);
  const takesJson = (c: Context) =>
    ["POST", "PUT", "PATCH"].includes(c.req.method) && !isWorkspace(c.req.path) && matchedRoutes(c).some((r) => r.method !== "ALL");
  app.use("/v1/*", async (c, next) => {
    if (!takesJson(c)) return next();
    const type = c.req.header("Content-Type");
    const length = c.req.header("Content-Length");
    const hasBody = (length !== undefined && length !== "0") || c.req.header("Transfer-Encoding") !== undefined;
    if ((hasBody || type) && !/^application\/([\w.-]+\+)?json\s*(;|$)/i.test(type ?? "")) {
      throw new ApiError("unsupported_media_type", "Send JSON with `Content-Type: application/json`.");
    }
    return next();
  });
  const jsonLimit = bodyLimit({
    maxSize: JSON_BODY_LIMIT,
    onError: () => {
      throw new ApiError("too_large", `The body is over ${JSON_BODY_LIMIT} bytes.`);
    },
  });
  app.use("/v1/*", (c, next) => (takesJson(c) ? jsonLimit(c, next) : next()));
  // Depth, __proto__ keys and lone surrogates are checked once here, on the body Hono parses
  // and caches for the validators.
  // Callbacks and GitHub deliveries parse their raw body themselves (it is signed) and check it there.
  const isSigned = (path: string) => path === "/v1/callbacks" || path.startsWith("/v1/webhooks/github/");
  app.use("/v1/*", async (c, next) => {
    if (!takesJson(c) || isSigned(c.req.path) || !c.req.header("Content-Type")) return next();
    const body: unknown = await c.req.json().catch(() => undefined); // malformed: the validator answers 400
    refuseUnfitJson(body);
    return next();
  });

  app.route("/", healthRoutes);
  app.route("/", adminRoutes);
  app.route("/", authRoutes);
  app.route("/", keyRoutes);
  app.route("/", teamRoutes);
  app.route("/", sessionRoutes);
  app.route("/", callbackRoutes);
  app.route("/", githubRoutes);
  app.route("/", streamRoutes);
  app.route("/", deadLetterRoutes);
  app.route("/", workspaceRoutes);
  app.route("/", sentinelRoutes);
  app.route("/", taskRoutes);
  app.route("/", taskLeaseRoutes);
  app.route("/", workerRoutes);
  app.route("/", questionRoutes);
  app.route("/", logRoutes);
  app.route("/", notificationRoutes);
  app.route("/", costRoutes);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", description: "An API key" });
  app.get("/openapi.json", (c) =>
    c.json(
      withMisconfigured(
        withBodyRefusals(
          app.getOpenAPI31Document({
            openapi: "3.1.0",
            info: { title: "Switchboard", version: "1.0.0", description: "Control plane for fleets of AI agents" },
          }),
        ),
      ),
    ),
  );

  app.notFound((c) => problemResponse("not_found", `No route for ${c.req.method} ${new URL(c.req.url).pathname}.`, c.get("requestId") ?? ""));

  app.onError((err, c) => {
    const rid = c.get("requestId") ?? "";
    if (err instanceof ApiError) return problemResponse(err.code, err.detail, rid, err.errors, err.headers);
    if (err instanceof HTTPException && STATUS_CODES[err.status]) {
      return problemResponse(STATUS_CODES[err.status] as ProblemCode, err.message || "The request was refused.", rid);
    }
    log("error", "unhandled error", { request_id: rid, error: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined });
    return problemResponse("internal", "Something went wrong on our side; the request id identifies it.", rid);
  });

  return app;
}
export type App = ReturnType<typeof createApp>;
