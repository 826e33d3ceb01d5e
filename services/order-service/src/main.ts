import { buildApp } from "./app.ts";
import { loadConfig } from "./config.ts";
import { connectDatabase } from "./db/connect.ts";
import { resolveDatabase } from "./db/database-url.ts";
import { migrateToLatest } from "./db/migrate.ts";
import { startAppReconciler } from "./orders/reconciler.ts";

/**
 * Starts the order service: config, database, migrations, HTTP and the
 * reconciler; closes gracefully on SIGINT/SIGTERM.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const database = await resolveDatabase(config);

  const migrator = connectDatabase(database.url, 1);
  try {
    await migrateToLatest(migrator);
  } finally {
    await migrator.destroy();
  }

  const app = await buildApp({ config, databaseUrl: database.url });
  await app.listen({ port: config.port, host: config.host });
  const reconciler = startAppReconciler(app, config);

  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, "shutting down");
    // The reconciler finishes its pass first; then the app stops accepting
    // connections, lets requests in flight finish, and closes the inventory
    // session and the database pool.
    await reconciler?.stop();
    await app.close();
    await database.stop();
    process.exit(0);
  };
  process.once("SIGINT", () => void close("SIGINT"));
  process.once("SIGTERM", () => void close("SIGTERM"));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
