import path from "node:path";
import type { Kysely } from "kysely";
import type { Config } from "../config.ts";
import { createDatabase, type Database } from "./database.ts";

/** Port of the development PostgreSQL started when no DATABASE_URL is given. */
export const EMBEDDED_POSTGRES_PORT = 54329;
const DATABASE_NAME = "inventory";

/** Where the database is, and how to stop a server started for it. */
export interface DatabaseTarget {
  url: string;
  /** True when this process started the (embedded) server. */
  embedded: boolean;
  /** Stops the server if this process started it. */
  stop(): Promise<void>;
}

/**
 * The database to use: DATABASE_URL when set; otherwise (development only,
 * config refuses it in production) the `inventory` database of the embedded
 * PostgreSQL on port 54329 with its data under `<repo>/.data/postgres`,
 * started unless another process already runs it. The embedded server's
 * code is loaded only on that path.
 */
export async function resolveDatabase(config: Config): Promise<DatabaseTarget> {
  if (config.databaseUrl !== undefined) {
    return { url: config.databaseUrl, embedded: false, stop: async () => {} };
  }
  const { ensureDatabase, externalPostgres, repoRoot, startEmbeddedPostgres } = await import(
    "@ecommerce/tools/postgres.ts"
  );
  const running = externalPostgres(`postgres://postgres:postgres@127.0.0.1:${EMBEDDED_POSTGRES_PORT}/postgres`);
  const url = running.url(DATABASE_NAME);
  try {
    await ensureDatabase(url);
    return { url, embedded: false, stop: running.stop };
  } catch (e) {
    if ((e as { code?: string }).code !== "ECONNREFUSED") throw e;
  }
  const server = await startEmbeddedPostgres({
    dataDir: path.join(repoRoot, ".data", "postgres"),
    port: EMBEDDED_POSTGRES_PORT,
  });
  await ensureDatabase(server.url(DATABASE_NAME));
  return { url: server.url(DATABASE_NAME), embedded: true, stop: server.stop };
}

/**
 * Runs `task` with a one-connection pool on the configured database (see
 * {@link resolveDatabase}) and closes everything afterwards; for scripts.
 */
export async function withDatabase<T>(config: Config, task: (db: Kysely<Database>) => Promise<T>): Promise<T> {
  const target = await resolveDatabase(config);
  const db = createDatabase({ url: target.url, poolSize: 1 });
  try {
    return await task(db);
  } finally {
    await db.destroy();
    await target.stop();
  }
}
