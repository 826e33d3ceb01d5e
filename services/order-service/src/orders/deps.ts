import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { Database } from "../db/database.ts";
import type { InventoryClient } from "../plugins/inventory.ts";
import type { OrderSteps } from "./steps.ts";

/** What the order use cases need: the orders database, inventory, the steps of placement, a logger and the lease of their work. */
export interface OrderDeps {
  db: Kysely<Database>;
  inventory: InventoryClient;
  /** Store, reserve, settle: batched on the request path, one batch per call in the reconciler. */
  steps: OrderSteps;
  log: FastifyBaseLogger;
  /**
   * How long a request or a background worker may hold what it works on (an
   * Idempotency-Key, an order claimed by the reconciler) before another may
   * take the work over. See {@link leaseFor}.
   */
  leaseMs: number;
}

/**
 * The lease of work on an order: one inventory call to its deadline
 * (retries included, see plugins/inventory-retry.ts) and the statements
 * around it, with room to spare.
 */
export function leaseFor(inventoryTimeoutMs: number): number {
  return inventoryTimeoutMs + 2_000;
}
