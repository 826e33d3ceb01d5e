import type { Kysely } from "kysely";
import { Migrator, type Migration, type MigrationProvider } from "kysely/migration";
import type { Database } from "./database.ts";
import * as initial from "./migrations/0001_initial.ts";
import * as reserveStockFunction from "./migrations/0002_reserve_stock_function.ts";
import * as reserveOrdersFunction from "./migrations/0003_reserve_orders_function.ts";
import * as stockEvents from "./migrations/0004_stock_events.ts";

/** Every migration in order of name; a static list, so no files are read at run time. */
const migrations: Record<string, Migration> = {
  "0001_initial": initial,
  "0002_reserve_stock_function": reserveStockFunction,
  "0003_reserve_orders_function": reserveOrdersFunction,
  "0004_stock_events": stockEvents,
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

/**
 * Brings the schema up to date. Safe to run from several replicas at once:
 * Kysely holds a lock table while migrating. Throws on the first failure.
 */
export async function migrate(db: Kysely<Database>): Promise<void> {
  // Migrations are written against no particular schema (Kysely<any>).
  const migrator = new Migrator({ db: db as Kysely<any>, provider });
  const { error } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(`migration failed: ${String(error)}`);
}
