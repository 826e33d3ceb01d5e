import { buildApp } from "./app.ts";
import { loadConfig } from "./config.ts";
import { connectDatabase } from "./db/connect.ts";
import { resolveDatabase } from "./db/database-url.ts";
import { migrateToLatest } from "./db/migrate.ts";
import { describeEvents } from "./orders/events.ts";
import { startAppReconciler } from "./orders/reconciler.ts";

/** After the grace period, the time the connections' close may still take before the process ends regardless. */
const FORCED_CLOSE_MS = 1_000;

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
  const events = describeEvents(config.events);
  app.log.info(events.fields, events.message);
  const reconciler = startAppReconciler(app, config);

  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    const { shutdownGraceMs } = config.limits;
    app.log.info({ signal, graceMs: shutdownGraceMs }, "shutting down");
    // Shutdown is bounded: what has not finished within the grace period
    // (a client still sending its body, a request waiting on the database)
    // has its connection closed, and a close that still hangs after that
    // ends the process anyway. Orders left pending are settled by the
    // reconciler of another replica, or of this one once it is back.
    const force = setTimeout(() => {
      app.log.warn("grace period over: closing the connections left");
      app.server.closeAllConnections();
      setTimeout(() => {
        app.log.error("shutdown did not finish; exiting");
        process.exit(1);
      }, FORCED_CLOSE_MS);
    }, shutdownGraceMs);
    // The reconciler finishes its pass first; then the app stops accepting
    // connections, lets requests in flight finish, closes idle keep-alive
    // connections, the inventory session and the database pool.
    await reconciler?.stop();
    await app.close();
    clearTimeout(force);
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
