import type { ReservedLine } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { v7 as uuidv7 } from "uuid";
import {
  duplicateProduct,
  insufficientStock,
  inventoryUnavailable,
  orderRejected,
  statusConflict,
  unknownProduct,
  AppError,
} from "../errors.ts";
import { classifyInventoryError } from "../plugins/inventory.ts";
import type { OrderDeps } from "./deps.ts";
import {
  errorResponse,
  holding,
  isFinal,
  respond,
  storePlacementResponse,
  takeOver,
  unlock,
  type Answer,
  type IdempotentRequest,
  type StoredResponse,
} from "./idempotency.ts";
import { toOrder, type Order } from "./order.ts";
import { priceOrder } from "./pricing.ts";
import {
  confirmOrder,
  findOrder,
  insertPendingOrder,
  markStockUnsynced,
  rejectOrder,
  type PendingOrder,
} from "./repository.ts";
import { syncOrderStock } from "./stock-sync.ts";

/** What a client asks for: who orders, and which products how many times. */
export interface PlaceOrderInput {
  user_id: string;
  items: readonly { product_id: string; quantity: number }[];
}

/** The status of a placed (confirmed) order. */
const PLACED = 201;

/** Why the reconciler rejects an order that stayed pending too long. */
const GIVE_UP_REASON = "inventory did not answer in time";

/**
 * Places an order: stores it as pending (one statement, with its
 * Idempotency-Key when given), reserves its stock in inventory (one call)
 * and confirms it with the reserved prices (one statement, which also
 * stores the key's response). Answers 201 with the order, or the problem
 * when inventory refuses it (the order is kept as rejected) or cannot be
 * reached (503; the order stays pending for the reconciler).
 *
 * A key used before replays its stored response, or takes over the request
 * its earlier use left unfinished: that request's order is driven on, never
 * a second one. Throws AppErrors for requests that are refused outright
 * (duplicate products, a reused or busy key).
 */
export async function placeOrder(deps: OrderDeps, input: PlaceOrderInput, request?: IdempotentRequest): Promise<Answer> {
  const items = orderLines(input.items);
  const order = await insertPendingOrder(
    deps.db,
    { id: uuidv7(), user_id: input.user_id, items },
    request && { request, lockMs: deps.leaseMs },
  );
  if (order) return { response: await answerPlacement(deps, order.id, request, () => reserveAndConfirm(deps, order)), replayed: false };
  // The insert stores nothing only when the key exists.
  if (!request) throw new Error("the pending order was not stored");
  const begun = await takeOver(deps.db, request, deps.leaseMs);
  if (begun.kind === "replay") return { response: begun.response, replayed: true };
  const response = await answerPlacement(deps, begun.orderId, request, () => resumePlacement(deps, begun.orderId));
  return { response, replayed: false };
}

/** The lines of an order in product order (the order the database returns them in); each product once. */
function orderLines(items: PlaceOrderInput["items"]): PendingOrder["items"] {
  const lines = items
    .map((i) => ({ product_id: i.product_id.toLowerCase(), quantity: i.quantity }))
    .sort((a, b) => (a.product_id < b.product_id ? -1 : a.product_id > b.product_id ? 1 : 0));
  const duplicate = lines.find((item, i) => i > 0 && lines[i - 1]?.product_id === item.product_id);
  if (duplicate) throw duplicateProduct(duplicate.product_id);
  return lines;
}

/**
 * Runs the work of a placement and renders its response. Every final
 * outcome has stored itself on the key by then (see reserveAndConfirm), so
 * the key only needs unlocking when there is none: a 503 or a defect.
 */
async function answerPlacement(
  deps: OrderDeps,
  orderId: string,
  request: IdempotentRequest | undefined,
  work: () => Promise<Order>,
): Promise<StoredResponse> {
  const response = await holding(deps.db, request, () => respond(PLACED, work));
  if (!isFinal(response)) {
    deps.log.warn({ orderId }, "inventory unavailable; order left pending");
    if (request) await unlock(deps.db, request);
  }
  return response;
}

/** Drives on the order of a placement whose request did not finish: reserve and confirm it, or answer as it stands. */
async function resumePlacement(deps: OrderDeps, orderId: string): Promise<Order> {
  const order = await findOrder(deps.db, orderId);
  if (order?.status !== "pending") return concludeSettled(deps, orderId);
  const items = order.items.map(({ product_id, quantity }) => ({ product_id, quantity }));
  return reserveAndConfirm(deps, { id: order.id, user_id: order.user_id, created_at: new Date(order.created_at), items });
}

/**
 * Drives a pending order to confirmed or rejected, and answers its
 * Idempotency-Key, if it has an unfinished one, with what placing the order
 * answers: 201 with the confirmed order, or the problem it is rejected with
 * (thrown as an AppError). ReserveStock is idempotent on the order id, so
 * this is safe to run again for an order left pending by a crash or an
 * inventory outage; that is what the reconciler does. When inventory cannot
 * be reached the order stays pending and nothing is answered.
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
  // Stock is held: the rejected state owes a release.
  if (!priced.ok) return reject(deps, order.id, priced.reason, orderRejected(order.id, priced.reason), false);

  // The answer shows when the order was confirmed, so the time is chosen
  // here rather than by the database (never before the order was created).
  const confirmedAt = new Date(Math.max(Date.now(), order.created_at.getTime()));
  const confirmed = toOrder(
    {
      id: order.id,
      user_id: order.user_id,
      status: "confirmed",
      total_minor: priced.total_minor,
      currency: priced.currency,
      rejection_reason: null,
      created_at: order.created_at,
      updated_at: confirmedAt,
    },
    order.items.map((item, i) => ({
      ...item,
      unit_price_minor: priced.items[i]?.unit_price_minor ?? null,
      currency: priced.currency,
    })),
  );
  if (await confirmOrder(deps.db, order.id, priced, { confirmedAt, answer: { status: PLACED, body: confirmed } })) {
    return confirmed;
  }
  return concludeSettled(deps, order.id);
}

/**
 * Rejects an order pending for longer than the reconciler waits, and
 * releases whatever inventory may hold for it. Throws the problem its
 * placement answers with (or returns the order if it got confirmed
 * meanwhile).
 */
export function giveUpOrder(deps: OrderDeps, orderId: string): Promise<Order> {
  return reject(deps, orderId, GIVE_UP_REASON, orderRejected(orderId, GIVE_UP_REASON), false);
}

/** Settles the order's fate after ReserveStock failed, and throws the error to answer with. */
async function settleRefusal(deps: OrderDeps, orderId: string, error: unknown): Promise<Order> {
  const failure = classifyInventoryError(error);
  // All or nothing: a refused reservation holds no stock, so nothing is owed.
  const refuse = (reason: string, answer: AppError) => reject(deps, orderId, reason, answer, true);

  switch (failure.kind) {
    case "insufficient_stock": {
      const lines = failure.items.map((i) => `${i.product_id} (requested ${i.requested}, available ${i.available})`);
      return refuse(`insufficient stock: ${lines.join("; ")}`, insufficientStock(orderId, failure.items));
    }
    case "not_found":
      return refuse(`unknown product: ${failure.message}`, unknownProduct(orderId, failure.message));
    case "invalid_argument":
    case "failed_precondition":
      return refuse(failure.message, orderRejected(orderId, failure.message));
    case "unavailable":
      // The order stays pending; the reconciler re-drives it.
      throw inventoryUnavailable(orderId);
    case "unexpected":
      throw failure.error;
  }
}

/**
 * Rejects a pending order, storing `answer` on its key in the same
 * statement, pays the release the rejected state owes unless `stockSynced`,
 * and throws `answer`. An order that stopped being pending meanwhile is
 * concluded as it stands instead.
 */
async function reject(deps: OrderDeps, orderId: string, reason: string, answer: AppError, stockSynced: boolean): Promise<Order> {
  const rejected = await rejectOrder(deps.db, orderId, { reason, stockSynced, answer: errorResponse(answer) });
  if (!rejected) return concludeSettled(deps, orderId);
  if (!stockSynced) await syncOrderStock(deps, rejected);
  throw answer;
}

/**
 * The order stopped being pending while it was being placed (it was
 * cancelled, or another worker settled it). A confirmed order is the same
 * order confirmed; any other state must not keep a reservation just made, so
 * its stock action is sent again, and placing it answers 409. The answer is
 * stored on the order's key unless one is there already.
 */
async function concludeSettled(deps: OrderDeps, orderId: string): Promise<Order> {
  const current = await findOrder(deps.db, orderId);
  if (!current) throw new Error(`order ${orderId} vanished while being placed`);
  if (current.status !== "confirmed") {
    await markStockUnsynced(deps.db, orderId);
    await syncOrderStock(deps, current);
  }
  const outcome = current.status === "confirmed" ? current : statusConflict(orderId, current.status, "confirmed");
  const response = outcome instanceof AppError ? errorResponse(outcome) : { status: PLACED, body: outcome };
  await storePlacementResponse(deps.db, orderId, response).execute();
  if (outcome instanceof AppError) throw outcome;
  return outcome;
}
