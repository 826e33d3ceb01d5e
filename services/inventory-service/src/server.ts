import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Kysely } from "kysely";
import { inventoryRoutes, type Routes } from "./connect.ts";
import { createDatabase, type Database } from "./db/database.ts";
import { migrate } from "./db/migrate.ts";
import { createLogger } from "./logger.ts";
import type { Logger } from "pino";
import { seed } from "./seed.ts";
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

/** Builds the HTTP/2 (h2c) server for the given route registrations. */
export function createGrpcServer(routes: readonly Routes[]): GrpcServer {
  const handler = connectNodeAdapter({
    routes: (router) => routes.forEach((register) => register(router)),
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
}

/** A running inventory service. */
export interface InventoryServer {
  /** Base URL for clients, such as http://127.0.0.1:9090. */
  url: string;
  port: number;
  db: Kysely<Database>;
  /** Stops the server (gracefully), the expiry sweeper and the pool. */
  close(): Promise<void>;
}

/**
 * Starts a complete inventory service in this process: migrates the
 * database, seeds it when asked, starts the expiry sweeper and serves
 * InventoryService over gRPC, gRPC-Web and Connect.
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
  const grpc = createGrpcServer([
    inventoryRoutes({ db, logger, reservationTtlSeconds: options.reservationTtlSeconds ?? 900 }),
  ]);
  let port: number;
  try {
    port = await grpc.listen(options.port ?? 0, host);
  } catch (e) {
    await sweeper.stop();
    await db.destroy();
    throw e;
  }
  const urlHost = host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    db,
    close: async () => {
      await grpc.close(options.shutdownTimeoutMs ?? 10_000);
      await sweeper.stop();
      await db.destroy();
    },
  };
}
