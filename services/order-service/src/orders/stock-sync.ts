import { classifyInventoryError } from "../plugins/inventory.ts";
import type { OrderDeps } from "./deps.ts";
import { claimStockUnsynced, markStockSynced, type Lease } from "./repository.ts";
import type { OrderStatus } from "./status.ts";
import { valueOf } from "./steps.ts";

/**
 * Stock sync: every order state after `pending` owes inventory one
 * idempotent action, and `orders.stock_synced_at` stays null until inventory
 * has acknowledged it:
 *
 *   confirmed → ConfirmReservations (the reservation stops expiring)
 *   cancelled → ReleaseStock
 *   rejected  → ReleaseStock (harmless when nothing was reserved)
 *   fulfilled → CommitStock
 *
 * The order's state is always written first, in one guarded UPDATE that also
 * clears stock_synced_at; the inventory call follows. A crash or an inventory
 * outage in between leaves the debt recorded in the database, and the
 * background pass below (run by the reconciler) pays it. Because it acts on
 * the order's current state, a later transition simply replaces an unpaid
 * earlier debt.
 */

/** Orders changed more recently than this are left to the request that changed them. */
const GRACE_MS = 2_000;
const BATCH_SIZE = 500;

/**
 * Sends the stock action that `order.status` owes and records the
 * acknowledgement. Never throws: a failure is logged and left for the
 * background pass to retry.
 */
export async function syncOrderStock(deps: OrderDeps, order: { id: string; status: OrderStatus }): Promise<void> {
  try {
    switch (order.status) {
      case "pending":
        return;
      case "confirmed":
        await confirmReservations(deps, [order.id]);
        return;
      case "cancelled":
      case "rejected":
        await deps.inventory.releaseStock({ orderId: order.id, reason: `order ${order.status}` });
        break;
      case "fulfilled":
        await commitStock(deps, order.id);
        break;
    }
    // Shared with the acknowledgements of the same moment (one statement).
    const [acknowledged] = await deps.steps.acknowledge([{ id: order.id, status: order.status }]);
    valueOf(acknowledged!);
  } catch (error) {
    deps.log.warn({ err: error, orderId: order.id, status: order.status }, "stock sync failed; will retry");
  }
}

async function commitStock(deps: OrderDeps, orderId: string): Promise<void> {
  try {
    await deps.inventory.commitStock({ orderId });
  } catch (error) {
    const failure = classifyInventoryError(error);
    // A released or expired reservation cannot be committed however often we
    // retry: record it loudly for people and stop retrying.
    if (failure.kind !== "failed_precondition" && failure.kind !== "not_found") throw error;
    deps.log.error({ orderId, reason: failure.message }, "fulfilled order had no live reservation to commit");
  }
}

async function confirmReservations(deps: OrderDeps, orderIds: string[]): Promise<void> {
  const { confirmedOrderIds, missingOrderIds } = await deps.inventory.confirmReservations({ orderIds });
  const marked = await markStockSynced(deps.db, [...confirmedOrderIds, ...missingOrderIds], "confirmed");
  // Retrying cannot bring back a reservation that expired or was released;
  // a confirmed order without one needs a person's attention.
  const lost = missingOrderIds.filter((id) => marked.includes(id));
  if (lost.length > 0) deps.log.error({ orderIds: lost }, "confirmed orders have no live reservation in inventory");
}

/**
 * One background pass: claims up to a batch of orders that have owed
 * inventory their stock action for longer than the grace period (see
 * claimStockUnsynced: safe with several replicas) and pays them.
 * Confirmations go in one batched call; the other actions one call each,
 * concurrently. Returns how many orders of each state were claimed; a
 * failed action is logged and retried after the claim's backoff.
 */
export async function syncStockOnce(deps: OrderDeps, lease: Lease): Promise<Partial<Record<OrderStatus, number>>> {
  const owed = await claimStockUnsynced(deps.db, { unchangedForMs: GRACE_MS, lease, limit: BATCH_SIZE });
  const confirmed = owed.filter((o) => o.status === "confirmed").map((o) => o.id);
  await Promise.all([
    confirmed.length > 0 &&
      confirmReservations(deps, confirmed).catch((error: unknown) =>
        deps.log.warn({ err: error, count: confirmed.length }, "confirming reservations failed; will retry"),
      ),
    ...owed.filter((o) => o.status !== "confirmed").map((order) => syncOrderStock(deps, order)),
  ]);
  const counts: Partial<Record<OrderStatus, number>> = {};
  for (const { status } of owed) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}
