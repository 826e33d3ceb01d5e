import type { ReservedLine } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { createBatcher, QueueFullError, type Batcher, type BatchStats, type Settled } from "@ecommerce/batching/batcher.ts";
import type { Kysely } from "kysely";
import type { BatchingConfig } from "../config.ts";
import type { Database } from "../db/database.ts";
import { overloaded } from "../errors.ts";
import { statusError, type InventoryClient } from "../plugins/inventory.ts";
import { currentRequestId, forRequests } from "../request-context.ts";
import type { Order } from "./order.ts";
import {
  acknowledgeStock,
  applyTransitions,
  settleOrders,
  storePendingOrders,
  type NewOrder,
  type PendingOrder,
  type Settlement,
  type TransitionRequest,
} from "./repository.ts";
import type { OrderStatus } from "./status.ts";

/**
 * The steps of the order saga, each over many orders at once. Placing:
 *
 *   store   — one statement stores the orders as pending, with their lines
 *             and Idempotency-Keys;
 *   reserve — one ReserveOrders call reserves every order's stock, each all
 *             or nothing, each with its own outcome;
 *   settle  — one statement confirms or rejects them all and stores each
 *             key's answer.
 *
 * And after: transition (one guarded UPDATE cancels or fulfils many
 * orders, each with its own guard) and acknowledge (one statement records
 * that inventory took the stock actions the new states owe).
 *
 * A step answers one settled result per order, in order, and never fails
 * one order for another's sake. The use cases (place-order.ts) drive each
 * order through the steps; whether the steps are batched is decided here:
 * {@link directSteps} runs each call as one batch (the reconciler hands it
 * every order it claimed), {@link batchedSteps} gathers concurrent requests
 * into natural batches.
 */
export interface OrderSteps {
  /** The stored order, or undefined when its Idempotency-Key was taken (nothing stored). */
  store(orders: readonly NewOrder[]): Promise<Settled<PendingOrder | undefined>[]>;
  /** The reserved lines, or the error ReserveStock would have failed with for that order. */
  reserve(orders: readonly PendingOrder[]): Promise<Settled<readonly ReservedLine[]>[]>;
  /** Whether the order was still pending, and is now settled. */
  settle(settlements: readonly Settlement[]): Promise<Settled<boolean>[]>;
  /** The order after its transition, or undefined when its guard did not match. */
  transition(changes: readonly TransitionRequest[]): Promise<Settled<Order | undefined>[]>;
  /** Whether the order's stock action was recorded as acknowledged (false: it moved on meanwhile). */
  acknowledge(acks: readonly { id: string; status: OrderStatus }[]): Promise<Settled<boolean>[]>;
}

/** The steps of the request path: batched, observable, and drained on close. */
export interface BatchedSteps extends OrderSteps {
  stats(): BatchStats[];
  /** Resolves once no batch is queued or running. */
  drained(): Promise<void>;
}

/** A placement step, by the name its batch sizes are reported under. */
export type StepName = (typeof STEP_NAMES)[number];
export const STEP_NAMES = ["store", "reserve", "settle", "transition", "acknowledge"] as const;

/** Most orders and lines one ReserveOrders call may carry (the contract's bound). */
export const RESERVE_ORDERS_MAX = { orders: 500, lines: 5000 } as const;

/** The steps run as given: each call is one batch (one statement, or one ReserveOrders call per 500 orders / 5,000 lines). */
export function directSteps(db: Kysely<Database>, inventory: InventoryClient): OrderSteps {
  return {
    store: (orders) => isolating(orders, (batch) => storePendingOrders(db, batch)),
    reserve: (orders) => reserveOrders(inventory, orders),
    settle: (settlements) => isolating(settlements, (batch) => settleOrders(db, batch)),
    transition: (changes) => isolating(changes, (batch) => applyTransitions(db, batch)),
    acknowledge: (acks) => isolating(acks, (batch) => acknowledgeStock(db, batch)),
  };
}

/**
 * The steps with concurrent calls gathered into natural batches: a queue
 * per step, each drained whole (up to `maxOrders`) by a batcher whenever it
 * has a free slot. No timers: a lone request goes through alone; under load
 * batches grow. Reservations keep one batch in flight at a time by
 * default, so that stock is decided in the order orders reach the step
 * (inventory decides a batch in request order); the database steps may
 * overlap. A queue at its bound refuses at once with the `overloaded`
 * error (503).
 */
export function batchedSteps(
  direct: OrderSteps,
  bounds: BatchingConfig,
  onBatch: (step: StepName, size: number) => void,
): BatchedSteps {
  const batcher = <I, O>(name: StepName, run: (items: I[]) => Promise<Settled<O>[]>, maxInFlight: number): Batcher<Tagged<I>, O> =>
    createBatcher({
      name,
      run: (tagged) => forRequests(tagged.map((t) => t.requestId), () => run(tagged.map((t) => t.item))),
      maxBatchSize: bounds.maxOrders,
      maxInFlight,
      maxQueued: bounds.maxQueued,
      onBatch: (size) => onBatch(name, size),
    });
  const store = batcher("store", direct.store, bounds.inFlight);
  const reserve = batcher("reserve", direct.reserve, bounds.reserveInFlight);
  const settle = batcher("settle", direct.settle, bounds.inFlight);
  const transition = batcher("transition", direct.transition, bounds.inFlight);
  const acknowledge = batcher("acknowledge", direct.acknowledge, bounds.inFlight);
  const all = [store, reserve, settle, transition, acknowledge];
  return {
    store: (orders) => submitAll(store, orders, () => overloaded()),
    reserve: (orders) => submitAll(reserve, orders, (order) => overloaded(order.id)),
    settle: (settlements) => submitAll(settle, settlements, (settlement) => overloaded(settlement.id)),
    transition: (changes) => submitAll(transition, changes, () => overloaded()),
    // A full queue leaves the debt recorded: the background stock sync pays it.
    acknowledge: (acks) => submitAll(acknowledge, acks, (ack) => overloaded(ack.id)),
    stats: () => all.map((b) => b.stats()),
    drained: async () => {
      // A drained step may be fed again by the one before it.
      while (all.some((b) => b.queued > 0 || b.inFlight > 0)) await Promise.all(all.map((b) => b.drained()));
    },
  };
}

/** An item with the request it was submitted for, so a batch knows whose work it does. */
interface Tagged<I> {
  item: I;
  requestId: string | undefined;
}

async function submitAll<I, O>(batcher: Batcher<Tagged<I>, O>, items: readonly I[], refusal: (item: I) => Error): Promise<Settled<O>[]> {
  const requestId = currentRequestId();
  return Promise.allSettled(
    items.map((item) =>
      batcher.submit({ item, requestId }).catch((error: unknown) => {
        throw error instanceof QueueFullError ? refusal(item) : error;
      }),
    ),
  );
}

/** The value of a settled result, or its reason thrown. */
export function valueOf<T>(result: Settled<T>): T {
  if (result.status === "rejected") throw result.reason;
  return result.value;
}

/**
 * Runs a batch statement; should it fail, runs each item alone, so that an
 * item the database refuses (a value it cannot store) fails alone and its
 * neighbours go through.
 */
async function isolating<I, O>(items: readonly I[], run: (batch: readonly I[]) => Promise<O[]>): Promise<Settled<O>[]> {
  try {
    return (await run(items)).map((value) => ({ status: "fulfilled", value }));
  } catch (error) {
    if (items.length === 1) return [{ status: "rejected", reason: error }];
    return Promise.allSettled(items.map(async (item) => (await run([item]))[0] as O));
  }
}

/**
 * Reserves stock for `orders` with ReserveOrders: one call per 500 orders
 * or 5,000 lines, one after another so that stock goes in the order given.
 * An order listed twice is reserved once (ReserveStock is idempotent on the
 * order id, so both get the same outcome). A call that fails as a whole
 * (inventory unreachable, past its deadline) fails each of its orders with
 * that error; otherwise each order's refusal is turned back into the error
 * ReserveStock would have thrown.
 */
async function reserveOrders(inventory: InventoryClient, orders: readonly PendingOrder[]): Promise<Settled<readonly ReservedLine[]>[]> {
  const unique = [...new Map(orders.map((o) => [o.id, o])).values()];
  const outcomes = new Map<string, Settled<readonly ReservedLine[]>>();
  for (const chunk of chunks(unique)) {
    try {
      const response = await inventory.reserveOrders({
        orders: chunk.map((o) => ({ orderId: o.id, lines: o.items.map((i) => ({ productId: i.product_id, quantity: i.quantity })) })),
      });
      for (const { orderId, result } of response.outcomes) {
        if (result.case === "reservation") outcomes.set(orderId, { status: "fulfilled", value: result.value.lines });
        else if (result.case === "error") outcomes.set(orderId, { status: "rejected", reason: statusError(result.value) });
      }
    } catch (error) {
      for (const o of chunk) outcomes.set(o.id, { status: "rejected", reason: error });
    }
  }
  return orders.map(
    (o) => outcomes.get(o.id) ?? { status: "rejected", reason: new Error(`ReserveOrders answered nothing for order ${o.id}`) },
  );
}

/** Splits orders into runs that fit one ReserveOrders call. */
function chunks(orders: readonly PendingOrder[]): PendingOrder[][] {
  const runs: PendingOrder[][] = [];
  let current: PendingOrder[] = [];
  let lines = 0;
  for (const order of orders) {
    if (current.length === RESERVE_ORDERS_MAX.orders || (current.length > 0 && lines + order.items.length > RESERVE_ORDERS_MAX.lines)) {
      runs.push(current);
      current = [];
      lines = 0;
    }
    current.push(order);
    lines += order.items.length;
  }
  if (current.length > 0) runs.push(current);
  return runs;
}
