import type { Config } from "../config.ts";

const DATABASE_NAME = "orders";

/** The orders database URL, and how to stop the server when this process started it. */
export interface ResolvedDatabase {
  url: string;
  stop(): Promise<void>;
}

/**
 * Returns DATABASE_URL when set. Otherwise (development only; config
 * refuses a missing DATABASE_URL in production) the `orders` database of
 * the development PostgreSQL (see devPostgres in tools/postgres.ts), which
 * the inventory service may have started already.
 */
export async function resolveDatabase(config: Config): Promise<ResolvedDatabase> {
  if (config.databaseUrl) return { url: config.databaseUrl, stop: async () => {} };
  const { devPostgres, ensureDatabase } = await import("@ecommerce/tools/postgres.ts");
  const server = await devPostgres();
  const url = server.url(DATABASE_NAME);
  await ensureDatabase(url);
  return { url, stop: server.stop };
}
