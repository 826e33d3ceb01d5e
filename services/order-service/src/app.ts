import { randomUUID } from "node:crypto";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { LogController, type FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import type { Config } from "./config.ts";
import { startStockSync } from "./orders/stock-sync.ts";
import { dbPlugin } from "./plugins/db.ts";
import { inventoryPlugin } from "./plugins/inventory.ts";
import { openApiPlugin } from "./plugins/openapi.ts";
import { problemsPlugin } from "./plugins/problems.ts";
import { healthRoutes } from "./routes/health.ts";
import { orderRoutes } from "./routes/orders.ts";
import { productRoutes } from "./routes/products.ts";
import { validatorCompiler } from "./validation.ts";

/** What the app is built from: the parsed configuration and the resolved database URL. */
export interface AppDeps {
  config: Config;
  databaseUrl: string;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;
const PROBES = new Set(["/healthz", "/readyz"]);

/**
 * Builds the order service's Fastify app, ready to listen. Tests call this
 * with their own database and inventory.
 */
export async function buildApp({ config, databaseUrl }: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: config.logLevel },
    // Request lines at info level, unless turned off; probes never log one.
    logController: new LogController({
      disableRequestLogging: (request) => !config.logRequests || PROBES.has(request.url),
    }),
    bodyLimit: config.bodyLimitBytes,
    // Honour a caller's X-Request-Id when it is sane, so one id follows a
    // request across services; otherwise make one.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  // JSON only: anything else is 415 rather than a confusing validation error.
  app.removeContentTypeParser("text/plain");
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });

  await app.register(problemsPlugin);
  await app.register(dbPlugin, { url: databaseUrl, poolSize: config.dbPoolSize });
  await app.register(inventoryPlugin, { url: config.inventoryUrl, timeoutMs: config.inventoryTimeoutMs });
  await app.register(openApiPlugin);
  await app.register(stockSyncPlugin, { intervalMs: config.stockSyncIntervalMs });

  await app.register(healthRoutes);
  await app.register(orderRoutes, { prefix: "/api/v1" });
  await app.register(productRoutes, { prefix: "/api/v1" });
  return app;
}

/** Runs the stock sync pass in the background while the app is up (see orders/stock-sync.ts). */
const stockSyncPlugin = fp<{ intervalMs: number }>(
  async (app, { intervalMs }) => {
    if (intervalMs === 0) return;
    let stop: (() => Promise<void>) | undefined;
    app.addHook("onReady", async () => {
      stop = startStockSync({ db: app.db, inventory: app.inventory, log: app.log }, intervalMs);
    });
    app.addHook("preClose", async () => stop?.());
  },
  { name: "stock-sync", dependencies: ["db", "inventory"] },
);
