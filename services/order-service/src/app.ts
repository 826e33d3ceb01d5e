import { randomUUID } from "node:crypto";
import { createClientCredentialsSource, staticTokenSource, type TokenSource } from "@ecommerce/auth/client-credentials.ts";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from "fastify";
import { Compile } from "typebox/compile";
import type { Config, InventoryTokenConfig } from "./config.ts";
import { unsupportedEncoding } from "./errors.ts";
import { authPlugin } from "./plugins/auth.ts";
import { dbPlugin } from "./plugins/db.ts";
import { inventoryPlugin } from "./plugins/inventory.ts";
import { metricsPlugin } from "./plugins/metrics.ts";
import { openApiPlugin } from "./plugins/openapi.ts";
import { orderStepsPlugin } from "./plugins/order-steps.ts";
import { eventsPlugin } from "./plugins/events.ts";
import { clientErrorHandler, problemsPlugin, sendError } from "./plugins/problems.ts";
import { protectionPlugin } from "./plugins/protection.ts";
import { requestContextPlugin } from "./request-context.ts";
import { eventRoutes } from "./routes/events.ts";
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
/** The versioned API, where every route needs a bearer token. */
const API_PREFIX = "/api/v1";

/**
 * Builds the order service's Fastify app, ready to listen. Tests call this
 * with their own database and inventory.
 */
export async function buildApp({ config, databaseUrl }: AppDeps): Promise<FastifyInstance> {
  const { limits } = config;
  const app = Fastify({
    logger: { level: config.logLevel },
    // Request lines at info level, unless turned off; probes never log one.
    // Every log line of a request carries its id, under the same name as inventory's lines.
    logController: new LogController({
      requestIdLogLabel: "requestId",
      disableRequestLogging: (request) => !config.logRequests || PROBES.has(request.url),
    }),
    // Every phase of a connection has a bound (see README, "Limits"): the
    // head's size and arrival, the body's size and arrival, idleness
    // between requests. Node checks the arrival deadlines on a sweep, by
    // default every 30 s; a sweep four times per head deadline keeps 408s on time.
    bodyLimit: limits.bodyBytes,
    http: {
      maxHeaderSize: limits.headerBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4)),
    },
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Parser errors and timeouts are problems too, with the security headers.
    clientErrorHandler,
    // While shutting down, requests still arriving on open connections are
    // served within the grace period (with Connection: close) rather than
    // refused with a body outside the contract.
    return503OnClosing: false,
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

  app.server.maxConnections = limits.maxConnections;

  app.setValidatorCompiler(validatorCompiler);
  acceptJsonBodiesOnly(app);
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
    if (closing) reply.header("connection", "close");
  });
  // Before the body is read, after every onRequest hook (the security headers).
  app.addHook("preParsing", async (request) => refuseEncodedBodies(request));
  for (const schema of COMPONENT_SCHEMAS) app.addSchema(schema);

  await app.register(problemsPlugin);
  await app.register(authPlugin, { verifier: config.auth, prefix: API_PREFIX });
  await app.register(protectionPlugin, config);
  await app.register(requestContextPlugin);
  await app.register(dbPlugin, { url: databaseUrl, poolSize: config.dbPoolSize });
  await app.register(inventoryPlugin, {
    url: config.inventoryUrl,
    timeoutMs: config.inventoryTimeoutMs,
    readMaxBytes: limits.inventoryReadMaxBytes,
    token: inventoryTokenSource(config.inventoryToken),
  });
  await app.register(openApiPlugin, { tokenUrl: config.inventoryToken.kind === "client_credentials" ? config.inventoryToken.tokenUrl : undefined });
  await app.register(metricsPlugin);
  await app.register(orderStepsPlugin, config.batching);
  await app.register(eventsPlugin, { url: databaseUrl, events: config.events });

  await app.register(healthRoutes, { events: config.events });
  await app.register(orderRoutes, { prefix: API_PREFIX });
  await app.register(productRoutes, { prefix: API_PREFIX });
  await app.register(eventRoutes, { prefix: API_PREFIX });
  return app;
}

/** Where the order service's own token for inventory comes from: the issuer's token endpoint, or a fixed token. */
function inventoryTokenSource(settings: InventoryTokenConfig): TokenSource {
  if (settings.kind === "static") return staticTokenSource(settings.token);
  const { tokenUrl, clientId, clientSecret, scope, audience } = settings;
  return createClientCredentialsSource({ tokenUrl, clientId, clientSecret, scope, audience });
}

/**
 * The API does not decompress bodies: an encoded body is 415 before it is
 * read, rather than a JSON error about its compressed bytes. Bounding the
 * body then bounds what is parsed, with no decompression bomb possible.
 */
function refuseEncodedBodies(request: FastifyRequest): void {
  const encoding = request.headers["content-encoding"]?.trim().toLowerCase();
  if (encoding && encoding !== "identity") throw unsupportedEncoding(encoding);
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
