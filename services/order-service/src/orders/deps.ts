import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { Database } from "../db/database.ts";
import type { InventoryClient } from "../plugins/inventory.ts";

/** What the order use cases need: the orders database, inventory and a logger. */
export interface OrderDeps {
  db: Kysely<Database>;
  inventory: InventoryClient;
  log: FastifyBaseLogger;
}
