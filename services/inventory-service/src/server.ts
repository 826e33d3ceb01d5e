import { createTokenVerifier } from "@ecommerce/auth/verifier.ts";
import { readEventsConfig, type EventsConfig } from "@ecommerce/events/config.ts";
import { startRelay } from "@ecommerce/events/relay.ts";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { sql, type Kysely } from "kysely";
import pg from "pg";
import type { Logger } from "pino";
import { DEFAULT_LIMITS, DEV_ISSUER_AUTH, type AuthSettings, type Limits } from "./config.ts";
import { inventoryServerRoutes } from "./connect.ts";
import { createDatabase, type Database } from "./db/database.ts";
import { migrate } from "./db/migrate.ts";
import { createGrpcServer } from "./edge/http2-server.ts";
import { createRequestHandler } from "./edge/request-handler.ts";
import { watchDatabase } from "./health/database-watch.ts";
import { createHealthState, ServingStatus } from "./health/health-state.ts";
import { authentication } from "./interceptors/authentication.ts";
import { callerBudget, DEFAULT_CALLER_BUDGET, type CallerBudgetSettings } from "./interceptors/caller-budget.ts";
import { deadlineCap } from "./interceptors/deadline.ts";
import { callLogging } from "./interceptors/logging.ts";
import { createLogger } from "./logger.ts";
import { createMetrics, startMetricsServer, type MetricsServer } from "./metrics.ts";
import { seed } from "./seed.ts";
import type { BatchBounds } from "./stock/coalescing.ts";
import { errorInterceptor } from "./stock/errors.ts";
import { INVENTORY_EVENT_SOURCE } from "./stock/events.ts";
import { startExpirySweeper } from "./stock/expiry-sweeper.ts";

export interface InventoryServerOptions {
  databaseUrl: string;
  /** Port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to listen on; 127.0.0.1 by default. */
  host?: string;
  reservationTtlSeconds?: number;
  sweepIntervalMs?: number;
  /** Load the sample products (default false). */
  seed?: boolean;
  /** pino level when no logger is given (default "warn"). */
  logLevel?: string;
  logger?: Logger;
  dbPoolSize?: number;
  /** How often health checks the database (default 2 s). */
  healthCheckIntervalMs?: number;
  /** Bounds on sizes, connections and time; DEFAULT_LIMITS for those not given. */
  limits?: Partial<Omit<Limits, "contents">>;
  /** Bounds of the batches single-order calls are served in (default DEFAULT_BATCH_BOUNDS). */
  batching?: BatchBounds;
  /** Plain HTTP port of GET /metrics, on `host`; 0 or unset: not served (the metrics are still kept). */
  metricsPort?: number;
  /**
   * Whose bearer tokens the gRPC edge accepts (see AuthSettings). Every call
   * but Health (and public reflection) needs one whatever is given here;
   * unset, the development issuer's (DEV_ISSUER_AUTH), as loadConfig's
   * development defaults.
   */
  auth?: AuthSettings;
  /** Calls each caller may make (default DEFAULT_CALLER_BUDGET). */
  callerBudget?: CallerBudgetSettings;
  /** Where the recorded stock events are published (default: nowhere, they are only recorded and pruned). */
  events?: EventsConfig;
}

/** The events settings when none are given: no broker, the defaults of every EVENTS_* variable. */
const NO_BROKER: EventsConfig = readEventsConfig({}, (_name, fallback) => fallback, []);

/** A running inventory service. */
export interface InventoryServer {
  /** Base URL for clients, such as http://127.0.0.1:9090. */
  url: string;
  port: number;
  db: Kysely<Database>;
  /** Base URL of GET /metrics, when served. */
  metricsUrl: string | undefined;
  /**
   * Shuts down in the order load balancers need: every health status turns
   * NOT_SERVING and open Watch streams end first, then the server stops
   * accepting connections and lets calls in flight finish, then the expiry
   * sweeper and the pool stop. Calling it again waits for the same shutdown.
   */
  close(): Promise<void>;
}

/** Health name that reports whether the process runs, whatever the database does. */
const LIVENESS = "liveness";

/**
 * Starts a complete inventory service in this process: migrates the
 * database, seeds it when asked, starts the expiry sweeper and serves, on
 * one port and over gRPC, gRPC-Web and Connect, InventoryService,
 * grpc.health.v1.Health and server reflection. Every InventoryService call
 * needs a bearer token of `options.auth`'s issuer with the scope of its RPC
 * (see RPC_SCOPES); Health never does, reflection unless made private.
 *
 * Health: the whole server ("") and InventoryService are NOT_SERVING until
 * the database answers `SELECT 1`, then follow it, checked every
 * `healthCheckIntervalMs`; `liveness` is SERVING while the process runs.
 */
export async function startInventoryServer(options: InventoryServerOptions): Promise<InventoryServer> {
  const logger = options.logger ?? createLogger(options.logLevel ?? "warn");
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const host = options.host ?? "127.0.0.1";
  const { reflectionPublic = true, ...verifierOptions } = options.auth ?? DEV_ISSUER_AUTH;
  // Built before anything starts: settings it refuses (no JWKS source, two) fail the start.
  const verifier = createTokenVerifier(verifierOptions);
  const db = createDatabase({ url: options.databaseUrl, poolSize: options.dbPoolSize, logger });
  try {
    await migrate(db);
    if (options.seed) {
      const added = await seed(db);
      logger.info({ added }, "seeded sample products");
    }
  } catch (e) {
    await db.destroy();
    throw e;
  }

  const sweeper = startExpirySweeper({ db, intervalMs: options.sweepIntervalMs ?? 5000, logger });
  const needsDatabase = ["", InventoryService.typeName];
  const health = createHealthState({
    ...Object.fromEntries(needsDatabase.map((name) => [name, ServingStatus.NOT_SERVING])),
    [LIVENESS]: ServingStatus.SERVING,
  });
  const stopWatching = watchDatabase(health, {
    check: async () => void (await sql`SELECT 1`.execute(db)),
    services: needsDatabase,
    intervalMs: options.healthCheckIntervalMs ?? 2000,
    onChange: (reachable, err) =>
      reachable ? logger.info("database reachable: serving") : logger.warn({ err }, "database unreachable: not serving"),
  });
  const metrics = createMetrics();
  const handler = createRequestHandler({
    routes: inventoryServerRoutes({
      db,
      health,
      reservationTtlSeconds: options.reservationTtlSeconds ?? 900,
      batching: options.batching,
      onBatch: metrics.observeBatch,
    }),
    interceptors: [
      callLogging(logger),
      errorInterceptor,
      authentication({ verifier, reflectionPublic }),
      callerBudget(options.callerBudget ?? DEFAULT_CALLER_BUDGET),
      deadlineCap(limits.maxCallMs),
    ],
    limits,
    logger,
  });
  const grpc = createGrpcServer(handler, limits);
  // The outbox relay, on a pool of its own so that publishing and calls never
  // wait for each other's connections (see the events package).
  const relayPool = new pg.Pool({ connectionString: options.databaseUrl, max: 2, connectionTimeoutMillis: 5_000, keepAlive: true });
  relayPool.on("error", (err) => logger.warn({ err }, "the events relay lost an idle connection to the database"));
  relayPool.on("connect", (client) => client.on("error", () => {}));
  const relay = startRelay({
    pool: relayPool,
    listen: options.databaseUrl,
    source: INVENTORY_EVENT_SOURCE,
    config: options.events ?? NO_BROKER,
    logger,
    streams: ["INVENTORY"],
  });
  // Without a broker nothing is published, by design: there is no lag to watch.
  if (relay && (options.events ?? NO_BROKER).natsUrl !== undefined) metrics.watchOutbox(() => relay.status());
  const stopRelay = async () => {
    await relay.close();
    await relayPool.end();
  };
  let port: number;
  let metricsServer: MetricsServer | undefined;
  try {
    port = await grpc.listen(options.port ?? 0, host);
    if (options.metricsPort) metricsServer = await startMetricsServer(metrics, options.metricsPort, host);
  } catch (e) {
    await grpc.close(0);
    stopWatching();
    await stopRelay();
    await sweeper.stop();
    await db.destroy();
    throw e;
  }

  let closing: Promise<void> | undefined;
  const shutdown = async () => {
    health.shutdown();
    stopWatching();
    await grpc.close(limits.shutdownTimeoutMs);
    await metricsServer?.close();
    // Calls in flight have finished: what they recorded is in the outbox, for this relay's next start or another replica's.
    await stopRelay();
    await sweeper.stop();
    await db.destroy();
  };
  const urlHost = host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    db,
    metricsUrl: metricsServer && `http://${urlHost}:${metricsServer.port}/metrics`,
    close: () => (closing ??= shutdown()),
  };
}
