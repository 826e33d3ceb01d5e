// Brings the inventory database schema up to date (DATABASE_URL, or the
// embedded development PostgreSQL when unset).
import { loadConfigOrExit } from "../src/config.ts";
import { withDatabase } from "../src/db/connection.ts";
import { migrate } from "../src/db/migrate.ts";
import { createLogger } from "../src/logger.ts";

const config = loadConfigOrExit();
await withDatabase(config, migrate);
createLogger(config.logLevel).info("inventory database migrated");
