import { loadConfigOrExit } from "./config.ts";
import { resolveDatabase } from "./db/connection.ts";
import { createLogger } from "./logger.ts";
import { startInventoryServer } from "./server.ts";

const config = loadConfigOrExit();
const logger = createLogger(config.logLevel);
const database = await resolveDatabase(config);

const server = await startInventoryServer({
  databaseUrl: database.url,
  port: config.serverPort,
  host: config.serverHost,
  reservationTtlSeconds: config.reservationTtlSeconds,
  sweepIntervalMs: config.expirySweepIntervalMs,
  seed: config.runSeeder,
  logger,
  dbPoolSize: config.dbPoolSize,
  healthCheckIntervalMs: config.healthCheckIntervalMs,
  limits: config.limits,
  batching: config.batching,
  metricsPort: config.metricsPort,
  auth: config.auth,
  callerBudget: config.callerBudget,
  events: config.events,
}).catch(async (err: unknown) => {
  logger.fatal({ err }, "could not start");
  await database.stop();
  process.exit(1);
});
logger.info({ url: server.url, port: server.port, protocols: ["grpc", "grpc-web", "connect"] }, `inventory-service listening on ${server.url}`);
logger.info({ issuer: config.auth.issuer, audience: config.auth.audience }, "calls need bearer tokens of this issuer and audience");
if (server.metricsUrl) logger.info({ url: server.metricsUrl }, `metrics on ${server.metricsUrl}`);

let stopping = false;
/** Health turns NOT_SERVING first, then calls in flight drain (see InventoryServer.close). */
async function shutdown(signal: NodeJS.Signals) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, "shutting down");
  try {
    await server.close();
    await database.stop();
    logger.info("stopped");
    process.exit(0);
  } catch (err) {
    logger.error({ err }, "shutdown failed");
    process.exit(1);
  }
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
