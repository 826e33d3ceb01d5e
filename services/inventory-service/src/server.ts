import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { sql, type Kysely } from "kysely";
import type { Logger } from "pino";
import { inventoryServerRoutes, type Routes } from "./connect.ts";
import { createDatabase, type Database } from "./db/database.ts";
import { migrate } from "./db/migrate.ts";
import { watchDatabase } from "./health/database-watch.ts";
import { createHealthState, ServingStatus } from "./health/health-state.ts";
import { deadlineCap } from "./interceptors/deadline.ts";
import { callLogging } from "./interceptors/logging.ts";
import { createLogger } from "./logger.ts";
import { createMetrics, startMetricsServer, type MetricsServer } from "./metrics.ts";
import { seed } from "./seed.ts";
import type { BatchBounds } from "./stock/coalescing.ts";
import { errorInterceptor } from "./stock/errors.ts";
import { startExpirySweeper } from "./stock/expiry-sweeper.ts";

/** A plaintext HTTP/2 server answering gRPC, gRPC-Web and Connect, with graceful shutdown. */
export interface GrpcServer {
  server: http2.Http2Server;
  /** Starts listening; resolves with the port (useful with port 0). */
  listen(port: number, host?: string): Promise<number>;
  /**
   * Stops accepting connections, lets calls in flight finish (each
   * connection gets a GOAWAY) and cuts off whatever is left after
   * `timeoutMs`.
   */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Builds the HTTP/2 (h2c) server for the given route registrations, with
 * `interceptors` around every call of every service, outermost first.
 * (They are given here, once, because interceptors set on one service
 * would replace these rather than add to them.)
 */
function createGrpcServer(routes: readonly Routes[], interceptors: Interceptor[] = []): GrpcServer {
  const handler = connectNodeAdapter({
    routes: (router) => routes.forEach((register) => register(router)),
    interceptors,
    grpc: true,
    grpcWeb: true,
    connect: true,
  });
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  return {
    server,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    close: (timeoutMs) =>
      new Promise((resolve) => {
        if (!server.listening) return resolve();
        const deadline = setTimeout(() => sessions.forEach((s) => s.destroy()), timeoutMs);
        server.close(() => {
          clearTimeout(deadline);
          resolve();
        });
        sessions.forEach((s) => s.close());
      }),
  };
}

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
  /** How long close() waits for calls in flight (default 10 s). */
  shutdownTimeoutMs?: number;
  /** How often health checks the database (default 2 s). */
  healthCheckIntervalMs?: number;
  /** The longest a unary call may run, whatever its deadline (default 30 s). */
  maxTimeoutMs?: number;
  /** Bounds of the batches single-order calls are served in (default DEFAULT_BATCH_BOUNDS). */
  batching?: BatchBounds;
  /** Plain HTTP port of GET /metrics, on `host`; 0 or unset: not served (the metrics are still kept). */
  metricsPort?: number;
}

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
 * grpc.health.v1.Health and server reflection.
 *
 * Health: the whole server ("") and InventoryService are NOT_SERVING until
 * the database answers `SELECT 1`, then follow it, checked every
 * `healthCheckIntervalMs`; `liveness` is SERVING while the process runs.
 */
export async function startInventoryServer(options: InventoryServerOptions): Promise<InventoryServer> {
  const logger = options.logger ?? createLogger(options.logLevel ?? "warn");
  const host = options.host ?? "127.0.0.1";
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
  const grpc = createGrpcServer(
    inventoryServerRoutes({
      db,
      health,
      reservationTtlSeconds: options.reservationTtlSeconds ?? 900,
      batching: options.batching,
      onBatch: metrics.observeBatch,
    }),
    [callLogging(logger), errorInterceptor, deadlineCap(options.maxTimeoutMs ?? 30_000)],
  );
  let port: number;
  let metricsServer: MetricsServer | undefined;
  try {
    port = await grpc.listen(options.port ?? 0, host);
    if (options.metricsPort) metricsServer = await startMetricsServer(metrics, options.metricsPort, host);
  } catch (e) {
    await grpc.close(0);
    stopWatching();
    await sweeper.stop();
    await db.destroy();
    throw e;
  }

  let closing: Promise<void> | undefined;
  const shutdown = async () => {
    health.shutdown();
    stopWatching();
    await grpc.close(options.shutdownTimeoutMs ?? 10_000);
    await metricsServer?.close();
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
