// Loads the sample products into the inventory database (DATABASE_URL, or
// the embedded development PostgreSQL when unset), migrating it first.
// Products already there are left as they are.
import { loadConfigOrExit } from "../src/config.ts";
import { withDatabase } from "../src/db/connection.ts";
import { migrate } from "../src/db/migrate.ts";
import { createLogger } from "../src/logger.ts";
import { seed } from "../src/seed.ts";

const config = loadConfigOrExit();
const added = await withDatabase(config, async (db) => {
  await migrate(db);
  return seed(db);
});
createLogger(config.logLevel).info({ added }, added > 0 ? "sample products added" : "sample products already present");
