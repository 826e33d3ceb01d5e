import type { ReservedLine } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import type { Settled } from "@ecommerce/batching/batcher.ts";
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
import { findOrder, markStockUnsynced, type PendingOrder, type Settlement } from "./repository.ts";
import { syncOrderStock } from "./stock-sync.ts";
import { valueOf } from "./steps.ts";

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
 * Places an order: stores it as pending (with its Idempotency-Key when
 * given), reserves its stock in inventory and confirms it with the reserved
 * prices (storing the key's response in the same statement). Each step is
 * shared with the orders placed at the same moment (deps.steps batches
 * them), but the order keeps its own outcome. Answers 201 with the order,
 * or the problem when inventory refuses it (the order is kept as rejected)
 * or cannot be reached (503; the order stays pending for the reconciler).
 *
 * A key used before (or by an earlier order of the same batch) replays its
 * stored response, or takes over the request its earlier use left
 * unfinished: that request's order is driven on, never a second one.
 * Throws AppErrors for requests that are refused outright (duplicate
 * products, a reused or busy key, a full queue).
 */
export async function placeOrder(deps: OrderDeps, input: PlaceOrderInput, request?: IdempotentRequest): Promise<Answer> {
  const items = orderLines(input.items);
  const [stored] = await deps.steps.store([
    { id: uuidv7(), user_id: input.user_id, items, idempotency: request && { request, lockMs: deps.leaseMs } },
  ]);
  const order = valueOf(stored!);
  if (order) return { response: await answerPlacement(deps, order.id, request, () => driveOne(deps, order)), replayed: false };
  // The store step stores nothing only when the key is taken.
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
 * outcome has stored itself on the key by then (see settle), so the key
 * only needs unlocking when there is none: a 503 or a defect.
 */
async function answerPlacement(
  deps: OrderDeps,
  orderId: string,
  request: IdempotentRequest | undefined,
  work: () => Promise<Order>,
): Promise<StoredResponse> {
  const response = await holding(deps.db, request, () => respond(PLACED, work));
  if (!isFinal(response)) {
    deps.log.warn({ orderId }, "order left pending");
    if (request) await unlock(deps.db, request);
  }
  return response;
}

/** Drives on the order of a placement whose request did not finish: reserve and confirm it, or answer as it stands. */
async function resumePlacement(deps: OrderDeps, orderId: string): Promise<Order> {
  const order = await findOrder(deps.db, orderId);
  if (order?.status !== "pending") return concludeSettled(deps, orderId);
  const items = order.items.map(({ product_id, quantity }) => ({ product_id, quantity }));
  return driveOne(deps, { id: order.id, user_id: order.user_id, created_at: new Date(order.created_at), items });
}

async function driveOne(deps: OrderDeps, order: PendingOrder): Promise<Order> {
  const [outcome] = await driveOrders(deps, [order]);
  return valueOf(outcome!);
}

/**
 * Drives pending orders to confirmed or rejected: one reserve step for all
 * of them, one settle step for all that inventory decided, and answers each
 * order's unfinished Idempotency-Key with what placing it answers: 201 with
 * the confirmed order, or the problem it is rejected with (each outcome a
 * rejected AppError). ReserveStock is idempotent on the order id, so this is
 * safe to run again for an order left pending by a crash or an inventory
 * outage; that is what the reconciler does. An order inventory could not
 * decide stays pending and nothing is answered. Outcomes follow `orders`.
 */
export async function driveOrders(deps: OrderDeps, orders: readonly PendingOrder[]): Promise<Settled<Order>[]> {
  const reserved = await deps.steps.reserve(orders);
  return settle(
    deps,
    orders.map((order, i) => decide(order, reserved[i]!)),
  );
}

/**
 * Rejects orders pending for longer than the reconciler waits, and releases
 * whatever inventory may hold for them. Each outcome is the problem its
 * placement answers with (or the order, if it got confirmed meanwhile).
 */
export function giveUpOrders(deps: OrderDeps, orderIds: readonly string[]): Promise<Settled<Order>[]> {
  return settle(
    deps,
    orderIds.map((id) => rejection(id, GIVE_UP_REASON, orderRejected(id, GIVE_UP_REASON), false)),
  );
}

/**
 * What to do with an order once inventory has answered for it: settle it
 * (with the answer its placement gets), or leave it pending and fail.
 */
type Decision =
  | { kind: "settle"; settlement: Settlement; outcome: Order | AppError }
  | { kind: "fail"; error: unknown };

/** Decides an order's fate from its reservation, or from the error ReserveStock failed with for it. */
function decide(order: PendingOrder, reserved: Settled<readonly ReservedLine[]>): Decision {
  if (reserved.status === "rejected") return refusal(order.id, reserved.reason);
  const priced = priceOrder(order.items, reserved.value);
  // Stock is held: the rejected state owes a release.
  if (!priced.ok) return rejection(order.id, priced.reason, orderRejected(order.id, priced.reason), false);

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
  return {
    kind: "settle",
    settlement: { id: order.id, outcome: "confirmed", priced, confirmedAt, answer: { status: PLACED, body: confirmed } },
    outcome: confirmed,
  };
}

/** Decides an order ReserveStock refused (or could not decide). */
function refusal(orderId: string, error: unknown): Decision {
  // Refused before inventory was asked (a full queue): the order stays pending.
  if (error instanceof AppError) return { kind: "fail", error };
  const failure = classifyInventoryError(error);
  // All or nothing: a refused reservation holds no stock, so nothing is owed.
  const refuse = (reason: string, answer: AppError) => rejection(orderId, reason, answer, true);

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
      return { kind: "fail", error: inventoryUnavailable(orderId) };
    case "unexpected":
      return { kind: "fail", error: failure.error };
  }
}

/** Rejects an order for `reason`, answering `answer`; the rejected state owes a release unless `stockSynced`. */
function rejection(orderId: string, reason: string, answer: AppError, stockSynced: boolean): Decision {
  return {
    kind: "settle",
    settlement: { id: orderId, outcome: "rejected", reason, stockSynced, answer: errorResponse(answer) },
    outcome: answer,
  };
}

/**
 * Settles the decided orders in one settle step, then concludes each: a
 * rejection that owes a release pays it, and an order that stopped being
 * pending meanwhile is concluded as it stands.
 */
async function settle(deps: OrderDeps, decisions: readonly Decision[]): Promise<Settled<Order>[]> {
  const settling = decisions.flatMap((d) => (d.kind === "settle" ? [d.settlement] : []));
  const applied = settling.length > 0 ? await deps.steps.settle(settling) : [];
  let next = 0;
  return Promise.allSettled(
    decisions.map(async (decision) => {
      if (decision.kind === "fail") throw decision.error;
      const { settlement, outcome } = decision;
      if (!valueOf(applied[next++]!)) return concludeSettled(deps, settlement.id);
      if (settlement.outcome === "rejected" && !settlement.stockSynced) await syncOrderStock(deps, { id: settlement.id, status: "rejected" });
      if (outcome instanceof AppError) throw outcome;
      return outcome;
    }),
  );
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
