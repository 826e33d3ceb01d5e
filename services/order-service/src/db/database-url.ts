import path from "node:path";
import pg from "pg";
import type { Config } from "../config.ts";

/** Where development PostgreSQL lives; the inventory service uses the same server. */
const EMBEDDED_PORT = 54329;
const DATABASE_NAME = "orders";

/** The orders database URL, and how to stop the server when this process started it. */
export interface ResolvedDatabase {
  url: string;
  stop(): Promise<void>;
}

/**
 * Returns DATABASE_URL when set. Otherwise (development only; config
 * refuses a missing DATABASE_URL in production) uses the embedded PostgreSQL
 * on port 54329 under <repo>/.data/postgres: the inventory service may have
 * started it already, so connecting comes first and starting second.
 */
export async function resolveDatabase(config: Config): Promise<ResolvedDatabase> {
  if (config.databaseUrl) return { url: config.databaseUrl, stop: async () => {} };

  const { startEmbeddedPostgres, ensureDatabase, externalPostgres, repoRoot } = await import(
    "@ecommerce/tools/postgres.ts"
  );
  const running = externalPostgres(`postgres://postgres:postgres@127.0.0.1:${EMBEDDED_PORT}/postgres`);
  let stop = async () => {};
  if (!(await answers(running.url("postgres")))) {
    try {
      const server = await startEmbeddedPostgres({ dataDir: path.join(repoRoot, ".data", "postgres"), port: EMBEDDED_PORT });
      stop = () => server.stop();
    } catch (error) {
      // Another service may have won the race to start it; use theirs.
      if (!(await answers(running.url("postgres")))) throw error;
    }
  }
  const url = running.url(DATABASE_NAME);
  await ensureDatabase(url);
  return { url, stop };
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}
