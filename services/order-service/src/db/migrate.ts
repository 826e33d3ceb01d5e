import type { Kysely } from "kysely";
import { Migrator, type Migration, type MigrationProvider } from "kysely/migration";
import * as createOrders from "./migrations/0001_create_orders.ts";
import * as idempotencyAndLeases from "./migrations/0002_idempotency_and_leases.ts";
import * as ordersListingIndexes from "./migrations/0003_orders_listing_indexes.ts";
import * as idempotencyKeysPerSubject from "./migrations/0004_idempotency_keys_per_subject.ts";
import * as orderEventsOutbox from "./migrations/0005_order_events_outbox.ts";

/** Every migration, in order; imported statically so nothing depends on the file system layout. */
const migrations: Record<string, Migration> = {
  "0001_create_orders": createOrders,
  "0002_idempotency_and_leases": idempotencyAndLeases,
  "0003_orders_listing_indexes": ordersListingIndexes,
  "0004_idempotency_keys_per_subject": idempotencyKeysPerSubject,
  "0005_order_events_outbox": orderEventsOutbox,
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

/** Brings the orders database schema to the latest migration; throws on failure. */
export async function migrateToLatest<DB>(db: Kysely<DB>): Promise<string[]> {
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}
