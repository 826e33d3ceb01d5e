import { loadConfig } from "../src/config.ts";
import { connectDatabase } from "../src/db/connect.ts";
import { resolveDatabase } from "../src/db/database-url.ts";
import { migrateToLatest } from "../src/db/migrate.ts";

// Migrates the orders database (DATABASE_URL, or the embedded development server) and exits.
const config = loadConfig();
const database = await resolveDatabase(config);
const db = connectDatabase(database.url, 1);
try {
  const applied = await migrateToLatest(db);
  console.log(applied.length > 0 ? `Applied: ${applied.join(", ")}` : "The orders database is up to date.");
} finally {
  await db.destroy();
  await database.stop();
}
