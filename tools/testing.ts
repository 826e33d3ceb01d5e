import { randomUUID } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { inject } from "vitest";
import { ensureDatabase, externalPostgres, freePort, startEmbeddedPostgres, type PostgresServer } from "./postgres.ts";
import { TEST_DATABASE_PREFIX } from "./vitest-setup.ts";

/**
 * Creates an empty database of its own for a test file on the test
 * PostgreSQL server and returns its URL.
 */
export async function createTestDatabase(label: string): Promise<string> {
  const name = `${TEST_DATABASE_PREFIX}${label}_${randomUUID().slice(0, 8)}`.replace(/[^a-z0-9_]/g, "_");
  const url = externalPostgres(inject("postgresUrl")).url(name);
  await ensureDatabase(url);
  return url;
}

/** A PostgreSQL server of a test's own, which the test may take away and bring back. */
export interface OwnPostgres {
  /** Connection URL of a database on it (create it with ensureDatabase). */
  url(database: string): string;
  /** Stops the server (a fast shutdown: every connection is terminated). */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Stops it for good and removes its data. */
  close(): Promise<void>;
}

/**
 * Starts an embedded PostgreSQL for one test file, whatever
 * TEST_DATABASE_URL says: tests of database restarts stop and start it,
 * which they must never do to the shared server.
 */
export async function startOwnPostgres(): Promise<OwnPostgres> {
  const dir = await mkdtemp(path.join(tmpdir(), "ecom-own-pg-"));
  // The server may run as another user (see startEmbeddedPostgres).
  await chmod(dir, 0o755);
  const options = { dataDir: path.join(dir, "data"), port: await freePort(), persistent: true };
  let server: PostgresServer | undefined = await startEmbeddedPostgres(options);
  const url = server.url.bind(server);
  const stop = async () => {
    await server?.stop();
    server = undefined;
  };
  return {
    url,
    stop,
    start: async () => {
      server ??= await startEmbeddedPostgres(options);
    },
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
