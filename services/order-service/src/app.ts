import { randomUUID } from "node:crypto";
import cors from "@fastify/cors";
import helmet from "@fastify/helmet";
import rateLimit from "@fastify/rate-limit";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { LogController, type FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { Compile } from "typebox/compile";
import type { Config } from "./config.ts";
import { rateLimited } from "./errors.ts";
import { dbPlugin } from "./plugins/db.ts";
import { inventoryPlugin } from "./plugins/inventory.ts";
import { metricsPlugin } from "./plugins/metrics.ts";
import { openApiPlugin } from "./plugins/openapi.ts";
import { orderStepsPlugin } from "./plugins/order-steps.ts";
import { problemsPlugin, sendError } from "./plugins/problems.ts";
import { requestContextPlugin } from "./request-context.ts";
import { healthRoutes } from "./routes/health.ts";
import { orderRoutes } from "./routes/orders.ts";
import { productRoutes } from "./routes/products.ts";
import { COMPONENT_SCHEMAS, RequestId } from "./routes/schemas.ts";
import { validatorCompiler } from "./validation.ts";

/** What the app is built from: the parsed configuration and the resolved database URL. */
export interface AppDeps {
  config: Config;
  databaseUrl: string;
}

const saneRequestId = Compile(RequestId);
const PROBES = new Set(["/healthz", "/readyz"]);

/**
 * Builds the order service's Fastify app, ready to listen. Tests call this
 * with their own database and inventory.
 */
export async function buildApp({ config, databaseUrl }: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: config.logLevel },
    // Request lines at info level, unless turned off; probes never log one.
    // Every log line of a request carries its id, under the same name as inventory's lines.
    logController: new LogController({
      requestIdLogLabel: "requestId",
      disableRequestLogging: (request) => !config.logRequests || PROBES.has(request.url),
    }),
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    // Honour a caller's X-Request-Id when it is sane, so one id follows a
    // request across services; otherwise make one.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && saneRequestId.Check(given) ? given : randomUUID();
    },
    // Errors raised before routing (a URL that cannot be decoded) are problems too.
    frameworkErrors: (error, request, reply) => sendError(error, request, reply),
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  acceptJsonBodiesOnly(app);
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });
  for (const schema of COMPONENT_SCHEMAS) app.addSchema(schema);

  await app.register(problemsPlugin);
  await app.register(protectionPlugin, config);
  await app.register(requestContextPlugin);
  await app.register(dbPlugin, { url: databaseUrl, poolSize: config.dbPoolSize });
  await app.register(inventoryPlugin, { url: config.inventoryUrl, timeoutMs: config.inventoryTimeoutMs });
  await app.register(openApiPlugin);
  await app.register(metricsPlugin);
  await app.register(orderStepsPlugin, config.batching);

  await app.register(healthRoutes);
  await app.register(orderRoutes, { prefix: "/api/v1" });
  await app.register(productRoutes, { prefix: "/api/v1" });
  return app;
}

/**
 * JSON is the only body the API takes: any other content type is 415 rather
 * than a confusing validation error. An empty body counts as no body, so a
 * client that labels every POST as JSON can still cancel or fulfil an order.
 */
function acceptJsonBodiesOnly(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body.toString();
    if (text === "") done(null, undefined);
    else parseJson(request, text, done);
  });
}

/**
 * Security headers on every response, CORS for the configured origins only,
 * and a request budget per client. Registered before the routes: the rate
 * limiter attaches itself to each route as it is added.
 */
const protectionPlugin = fp<Config>(
  async (app, config) => {
    await app.register(helmet, {
      contentSecurityPolicy: {
        directives: {
          // Swagger UI at /docs is served over plain HTTP in development;
          // upgrading its requests to HTTPS would break it there.
          upgradeInsecureRequests: null,
        },
      },
    });

    if (config.corsOrigins.length > 0) {
      await app.register(cors, {
        origin: config.corsOrigins.includes("*") ? "*" : [...config.corsOrigins],
        methods: ["GET", "POST"],
        allowedHeaders: ["content-type", "idempotency-key", "x-request-id"],
        exposedHeaders: [
          "location",
          "retry-after",
          "x-request-id",
          "idempotent-replayed",
          "x-ratelimit-limit",
          "x-ratelimit-remaining",
          "x-ratelimit-reset",
        ],
        maxAge: 600,
      });
    }

    if (config.rateLimitMax > 0) {
      await app.register(rateLimit, {
        max: config.rateLimitMax,
        timeWindow: config.rateLimitWindowMs,
        errorResponseBuilder: (_request, context) => rateLimited(Math.max(1, Math.ceil(context.ttl / 1000))),
      });
    }
  },
  { name: "protection", dependencies: ["problems"] },
);
