import type { ReservedLine } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { v7 as uuidv7 } from "uuid";
import {
  duplicateProduct,
  insufficientStock,
  inventoryUnavailable,
  orderRejected,
  statusConflict,
  unknownProduct,
} from "../errors.ts";
import { classifyInventoryError } from "../plugins/inventory.ts";
import type { OrderDeps } from "./deps.ts";
import { toOrder, type Order } from "./order.ts";
import { priceOrder } from "./pricing.ts";
import { applyTransition, confirmOrder, findOrder, insertPendingOrder, markStockUnsynced } from "./repository.ts";
import { REJECT } from "./status.ts";
import { syncOrderStock } from "./stock-sync.ts";

/** What a client asks for: who orders, and which products how many times. */
export interface PlaceOrderInput {
  user_id: string;
  items: readonly { product_id: string; quantity: number }[];
}

/** A pending order as reserveAndConfirm needs it: its id and its lines in product order. */
export interface PendingOrder {
  id: string;
  items: readonly { product_id: string; quantity: number }[];
}

/**
 * Places an order: stores it as pending (one statement), reserves its stock
 * in inventory (one call) and confirms it with the reserved prices (one
 * statement). Throws an AppError naming the order when inventory rejects it
 * or cannot be reached; in the latter case the order stays pending.
 */
export async function placeOrder(deps: OrderDeps, input: PlaceOrderInput): Promise<Order> {
  // Lines are kept in product order, the order the database returns them in.
  const items = input.items
    .map((i) => ({ product_id: i.product_id.toLowerCase(), quantity: i.quantity }))
    .sort((a, b) => (a.product_id < b.product_id ? -1 : a.product_id > b.product_id ? 1 : 0));
  const duplicate = items.find((item, i) => i > 0 && items[i - 1]?.product_id === item.product_id);
  if (duplicate) throw duplicateProduct(duplicate.product_id);

  const { id } = await insertPendingOrder(deps.db, { id: uuidv7(), user_id: input.user_id, items });
  return reserveAndConfirm(deps, { id, items });
}

/**
 * Drives a pending order to confirmed or rejected. ReserveStock is
 * idempotent on the order id, so this is safe to run again for an order
 * left pending by a crash or an inventory outage.
 */
export async function reserveAndConfirm(deps: OrderDeps, order: PendingOrder): Promise<Order> {
  let reserved: readonly ReservedLine[];
  try {
    const { reservation } = await deps.inventory.reserveStock({
      orderId: order.id,
      lines: order.items.map((i) => ({ productId: i.product_id, quantity: i.quantity })),
    });
    reserved = reservation?.lines ?? [];
  } catch (error) {
    return settleRefusal(deps, order.id, error);
  }

  const priced = priceOrder(order.items, reserved);
  if (!priced.ok) {
    // Stock is held: the rejected state owes a release.
    const rejected = await applyTransition(deps.db, order.id, REJECT, { rejection_reason: priced.reason });
    if (rejected) await syncOrderStock(deps, rejected);
    throw orderRejected(order.id, priced.reason);
  }

  const row = await confirmOrder(deps.db, order.id, priced);
  if (row) {
    return toOrder(
      row,
      order.items.map((item, i) => ({
        ...item,
        unit_price_minor: priced.items[i]?.unit_price_minor ?? null,
        currency: priced.currency,
      })),
    );
  }
  return settleLostRace(deps, order.id);
}

/** Settles the order's fate after ReserveStock failed, and throws the error to answer with. */
async function settleRefusal(deps: OrderDeps, orderId: string, error: unknown): Promise<never> {
  const failure = classifyInventoryError(error);
  const reject = async (reason: string) =>
    // All or nothing: a refused reservation holds no stock, so nothing is owed.
    applyTransition(deps.db, orderId, REJECT, { rejection_reason: reason, stockSynced: true });

  switch (failure.kind) {
    case "insufficient_stock": {
      const lines = failure.items.map((i) => `${i.product_id} (requested ${i.requested}, available ${i.available})`);
      await reject(`insufficient stock: ${lines.join("; ")}`);
      throw insufficientStock(orderId, failure.items);
    }
    case "not_found":
      await reject(`unknown product: ${failure.message}`);
      throw unknownProduct(orderId, failure.message);
    case "invalid_argument":
    case "failed_precondition":
      await reject(failure.message);
      throw orderRejected(orderId, failure.message);
    case "unavailable":
      // The order stays pending; the reconciler re-drives it.
      deps.log.warn({ orderId, reason: failure.message }, "inventory unavailable; order left pending");
      throw inventoryUnavailable(orderId);
    case "unexpected":
      throw failure.error;
  }
}

/**
 * The order stopped being pending while its stock was being reserved (it was
 * cancelled, or another worker settled it). A confirmed order is the same
 * order confirmed; any other state must not keep the reservation just made.
 */
async function settleLostRace(deps: OrderDeps, orderId: string): Promise<Order> {
  const current = await findOrder(deps.db, orderId);
  if (!current) throw new Error(`order ${orderId} vanished while being placed`);
  if (current.status === "confirmed") return current;
  await markStockUnsynced(deps.db, orderId);
  await syncOrderStock(deps, current);
  throw statusConflict(orderId, current.status, "confirmed");
}
