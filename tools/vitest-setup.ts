import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { externalPostgres, startEmbeddedPostgres, type PostgresServer } from "./postgres.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of the `postgres` database of the server the tests use. */
    postgresUrl: string;
  }
}

export const TEST_DATABASE_PREFIX = "ecom_test_";

/**
 * Starts the PostgreSQL server the tests run against: the one at
 * TEST_DATABASE_URL when set, an embedded one in a temporary folder
 * otherwise. Each test file makes its own databases on it (see testing.ts).
 */
export default async function setup(project: TestProject) {
  let server: PostgresServer;
  let dir: string | undefined;
  const external = process.env.TEST_DATABASE_URL;
  if (external) {
    server = externalPostgres(external);
  } else {
    dir = await mkdtemp(path.join(tmpdir(), "ecom-pg-"));
    // The server may run as another user (see startEmbeddedPostgres).
    await chmod(dir, 0o755);
    server = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), persistent: false });
  }
  const adminUrl = server.url("postgres");
  project.provide("postgresUrl", adminUrl);
  return async () => {
    if (external) await dropTestDatabases(adminUrl);
    await server.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  };
}

async function dropTestDatabases(adminUrl: string) {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE $1",
      [`${TEST_DATABASE_PREFIX}%`],
    );
    for (const { datname } of rows) {
      await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
    }
  } finally {
    await client.end();
  }
}
