import type { Kysely } from "kysely";
import type { Config } from "../config.ts";
import { createDatabase, type Database } from "./database.ts";

const DATABASE_NAME = "inventory";

/** Where the database is, and how to stop a server started for it. */
export interface DatabaseTarget {
  url: string;
  /** Stops the server if this process started it. */
  stop(): Promise<void>;
}

/**
 * The database to use: DATABASE_URL when set; otherwise (development only,
 * config refuses it in production) the `inventory` database of the
 * development PostgreSQL (see devPostgres in tools/postgres.ts), started
 * unless another process already runs it. The embedded server's code is
 * loaded only on that path.
 */
export async function resolveDatabase(config: Config): Promise<DatabaseTarget> {
  if (config.databaseUrl !== undefined) return { url: config.databaseUrl, stop: async () => {} };
  const { devPostgres, ensureDatabase } = await import("@ecommerce/tools/postgres.ts");
  const server = await devPostgres();
  const url = server.url(DATABASE_NAME);
  await ensureDatabase(url);
  return { url, stop: server.stop };
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
