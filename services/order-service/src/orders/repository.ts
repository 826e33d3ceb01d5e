import { sql, type Kysely, type Transaction } from "kysely";
import { jsonArrayFrom } from "kysely/helpers/postgres";
import type { Database } from "../db/database.ts";
import { isKeyTaken, newKeyRow, storePlacementResponse, type IdempotentRequest, type StoredResponse } from "./idempotency.ts";
import { toOrder, type Order } from "./order.ts";
import { CONFIRM, REJECT, type OrderStatus, type Transition } from "./status.ts";

type Db = Kysely<Database> | Transaction<Database>;

/** An order's lines as priced by inventory, ready to be stored. */
export interface PricedOrder {
  items: { product_id: string; unit_price_minor: number }[];
  total_minor: number;
  currency: string;
}

/** A pending order as the use cases drive it: who placed it, when, and its lines in product order. */
export interface PendingOrder {
  id: string;
  user_id: string;
  created_at: Date;
  items: readonly { product_id: string; quantity: number }[];
}

/**
 * Stores a new pending order with its lines, and its Idempotency-Key when
 * given, in one statement (one round trip): the inserts run as
 * data-modifying CTEs and the foreign key is checked at the end of the
 * statement. Returns undefined, having stored nothing, when the key exists
 * already.
 */
export async function insertPendingOrder(
  db: Db,
  order: Omit<PendingOrder, "created_at">,
  idempotency?: { request: IdempotentRequest; lockMs: number },
): Promise<PendingOrder | undefined> {
  const statement = db
    .with("new_order", (qc) =>
      qc.insertInto("orders").values({ id: order.id, user_id: order.user_id, status: "pending" }).returningAll(),
    )
    .with("new_items", (qc) =>
      qc
        .insertInto("order_items")
        .values(order.items.map((i) => ({ order_id: order.id, product_id: i.product_id, quantity: i.quantity })))
        .returning("product_id"),
    );
  const withKey = idempotency
    ? statement.with("new_key", (qc) =>
        qc.insertInto("idempotency_keys").values(newKeyRow(idempotency.request, order.id, idempotency.lockMs)).returning("key"),
      )
    : statement;
  try {
    const row = await withKey.selectFrom("new_order").select("created_at").executeTakeFirstOrThrow();
    return { ...order, created_at: row.created_at };
  } catch (error) {
    if (isKeyTaken(error)) return undefined;
    throw error;
  }
}

/**
 * Applies a transition if the order is in one of its starting states, and
 * returns the order afterwards, or undefined when the guard did not match.
 * The new state owes inventory its stock action (stock_synced_at = null).
 */
export async function applyTransition(db: Db, id: string, transition: Transition): Promise<Order | undefined> {
  const row = await db
    .with("changed", (qc) =>
      qc
        .updateTable("orders")
        .set({
          status: transition.to,
          updated_at: sql<Date>`now()`,
          stock_synced_at: null,
          ...FRESH_DEBT,
        })
        .where("id", "=", id)
        .where("status", "in", transition.from)
        .returningAll(),
    )
    .selectFrom("changed")
    .selectAll("changed")
    .select((eb) =>
      jsonArrayFrom(
        eb
          .selectFrom("order_items")
          .select(["product_id", "quantity", "unit_price_minor", "currency"])
          .whereRef("order_items.order_id", "=", "changed.id")
          .orderBy("product_id"),
      ).as("items"),
    )
    .executeTakeFirst();
  return row && toOrder(row, row.items);
}

/**
 * Confirms a pending order, stores the prices inventory reserved it at, and
 * answers the order's Idempotency-Key with `answer` if it has an unfinished
 * one, all in one statement. `confirmedAt` becomes updated_at: it is chosen
 * by the caller because `answer` shows it. Returns whether the order was
 * still pending (and is now confirmed).
 */
export async function confirmOrder(
  db: Db,
  id: string,
  priced: PricedOrder,
  confirmation: { confirmedAt: Date; answer: StoredResponse },
): Promise<boolean> {
  const productIds = priced.items.map((i) => i.product_id);
  const prices = priced.items.map((i) => i.unit_price_minor);
  const row = await db
    .with("confirmed", (qc) =>
      qc
        .updateTable("orders")
        .set({
          status: CONFIRM.to,
          total_minor: priced.total_minor,
          currency: priced.currency,
          updated_at: confirmation.confirmedAt,
          ...FRESH_DEBT,
        })
        .where("id", "=", id)
        .where("status", "in", CONFIRM.from)
        .returning("id"),
    )
    .with("priced", (qc) =>
      qc
        .updateTable("order_items")
        .set({
          unit_price_minor: sql<number>`(${prices}::bigint[])[array_position(${productIds}::uuid[], product_id)]`,
          currency: priced.currency,
        })
        .where("order_id", "in", qc.selectFrom("confirmed").select("id"))
        .returning("product_id"),
    )
    .with("answered", () => storePlacementResponse(db, id, confirmation.answer).where(settledBy("confirmed")).returning("key"))
    .selectFrom("confirmed")
    .select("id")
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Rejects a pending order for `reason` and answers its Idempotency-Key with
 * `answer` if it has an unfinished one, in one statement. The rejected
 * state owes inventory a release unless `stockSynced` says nothing is held.
 * Returns the order's id and new status, or undefined when it was no longer
 * pending.
 */
export async function rejectOrder(
  db: Db,
  id: string,
  rejection: { reason: string; stockSynced: boolean; answer: StoredResponse },
): Promise<{ id: string; status: OrderStatus } | undefined> {
  return db
    .with("rejected", (qc) =>
      qc
        .updateTable("orders")
        .set({
          status: REJECT.to,
          rejection_reason: rejection.reason,
          updated_at: sql<Date>`now()`,
          stock_synced_at: rejection.stockSynced ? sql<Date>`now()` : null,
          ...FRESH_DEBT,
        })
        .where("id", "=", id)
        .where("status", "in", REJECT.from)
        .returning(["id", "status"]),
    )
    .with("answered", () => storePlacementResponse(db, id, rejection.answer).where(settledBy("rejected")).returning("key"))
    .selectFrom("rejected")
    .selectAll()
    .executeTakeFirst();
}

/** Guards a key's answer by the outcome of the CTE that settles the order in the same statement. */
const settledBy = (cte: "confirmed" | "rejected") => sql<boolean>`exists (select 1 from ${sql.table(cte)})`;

/** A state change starts the new state's background work afresh (see the reconciler's claims). */
const FRESH_DEBT = { next_attempt_at: null, attempts: 0 } as const;

/** One order with its lines, or undefined. */
export async function findOrder(db: Db, id: string): Promise<Order | undefined> {
  const row = await selectOrders(db).where("orders.id", "=", id).executeTakeFirst();
  return row && toOrder(row, row.items);
}

/** Where an order sits in the listing order: its exact creation time (microseconds, UTC) and its id. */
export interface ListPosition {
  /** created_at as an RFC 3339 string with microseconds, so a position is exact. */
  created_at: string;
  id: string;
}

/** Filters of the order listing; time bounds are RFC 3339 date-times. */
export interface OrderFilters {
  user_id?: string;
  status?: OrderStatus;
  /** Inclusive. */
  created_after?: string;
  /** Exclusive. */
  created_before?: string;
}

/**
 * Orders newest first (created_at, then id, descending), strictly after the
 * keyset position `after` when given, with optional filters. Each filter
 * combination has an index that yields rows in this order (migration 0003),
 * so a page reads about `limit` rows at any depth.
 */
export async function listOrders(
  db: Db,
  query: OrderFilters & { after?: ListPosition; limit: number },
): Promise<{ order: Order; position: ListPosition }[]> {
  let q = selectOrders(db)
    .select(sql<string>`to_char(orders.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as("position"))
    .orderBy("orders.created_at", "desc")
    .orderBy("orders.id", "desc")
    .limit(query.limit);
  if (query.user_id !== undefined) q = q.where("orders.user_id", "=", query.user_id);
  if (query.status !== undefined) q = q.where("orders.status", "=", query.status);
  if (query.created_after !== undefined) q = q.where("orders.created_at", ">=", sql<Date>`${query.created_after}::timestamptz`);
  if (query.created_before !== undefined) q = q.where("orders.created_at", "<", sql<Date>`${query.created_before}::timestamptz`);
  const { after } = query;
  if (after !== undefined) {
    q = q.where((eb) =>
      eb(eb.refTuple("orders.created_at", "orders.id"), "<", eb.tuple(sql<Date>`${after.created_at}::timestamptz`, after.id)),
    );
  }
  const rows = await q.execute();
  return rows.map((row) => ({ order: toOrder(row, row.items), position: { created_at: row.position, id: row.id } }));
}

function selectOrders(db: Db) {
  return db
    .selectFrom("orders")
    .selectAll("orders")
    .select((eb) =>
      jsonArrayFrom(
        eb
          .selectFrom("order_items")
          .select(["product_id", "quantity", "unit_price_minor", "currency"])
          .whereRef("order_items.order_id", "=", "orders.id")
          .orderBy("product_id"),
      ).as("items"),
    );
}

/**
 * When an order's next background attempt is due, as an SQL expression: the
 * lease covers the attempt itself, and grows with each failed attempt
 * (doubling, with jitter so replicas spread out) up to a cap.
 */
function nextAttemptAt(lease: Lease) {
  const ms = sql<number>`least(${lease.maxMs}::float8, greatest(${lease.minMs}::float8, ${lease.baseMs}::float8 * power(2, least(attempts, 16))))`;
  return sql<Date>`now() + make_interval(secs => ${ms} * (0.75 + random() / 2) / 1000)`;
}

/** How long a background worker may keep an order it claimed before another may take it. */
export interface Lease {
  /** Long enough for one attempt (an inventory call and its statements). */
  minMs: number;
  /** Doubles with each attempt... */
  baseMs: number;
  /** ...up to this. */
  maxMs: number;
}

/** A pending order claimed for re-driving; `expired` when it has been pending too long. */
export interface ClaimedPendingOrder extends PendingOrder {
  expired: boolean;
}

/**
 * Claims up to `limit` orders pending for longer than `graceMs` whose next
 * attempt is due, oldest first, by pushing their next attempt past the
 * lease in one short statement. Rows another worker is claiming are skipped
 * (FOR UPDATE SKIP LOCKED), so replicas share the work without a
 * transaction held open across inventory calls. The lease never reaches past
 * the moment the order is given up, so that moment is kept.
 */
export async function claimPendingOrders(
  db: Db,
  options: { graceMs: number; giveUpMs: number; lease: Lease; limit: number },
): Promise<ClaimedPendingOrder[]> {
  const giveUp = sql`make_interval(secs => ${options.giveUpMs / 1000})`;
  return db
    .with("claimed", (qc) =>
      qc
        .updateTable("orders")
        .set((eb) => ({
          next_attempt_at: sql<Date>`least(${nextAttemptAt(options.lease)}, created_at + ${giveUp})`,
          attempts: eb("attempts", "+", 1),
        }))
        .where("id", "in", (eb) =>
          eb
            .selectFrom("orders")
            .select("id")
            .where("status", "=", "pending")
            .where("created_at", "<", sql<Date>`now() - make_interval(secs => ${options.graceMs / 1000})`)
            .where((w) => w.or([w("next_attempt_at", "is", null), w("next_attempt_at", "<=", sql<Date>`now()`)]))
            .orderBy("created_at")
            .limit(options.limit)
            .forUpdate()
            .skipLocked(),
        )
        .where("status", "=", "pending")
        .returning(["id", "user_id", "created_at", sql<boolean>`created_at <= now() - ${giveUp}`.as("expired")]),
    )
    .selectFrom("claimed")
    .selectAll("claimed")
    .select((eb) =>
      jsonArrayFrom(
        eb
          .selectFrom("order_items")
          .select(["product_id", "quantity"])
          .whereRef("order_items.order_id", "=", "claimed.id")
          .orderBy("product_id"),
      ).as("items"),
    )
    .orderBy("created_at")
    .execute();
}

/**
 * Claims up to `limit` orders that owe inventory a stock action, changed
 * longer than `unchangedForMs` ago (until then the request that changed
 * them is paying it) and due for an attempt, oldest change first, the same
 * way as {@link claimPendingOrders}.
 */
export async function claimStockUnsynced(
  db: Db,
  options: { unchangedForMs: number; lease: Lease; limit: number },
): Promise<{ id: string; status: OrderStatus }[]> {
  return db
    .updateTable("orders")
    .set((eb) => ({ next_attempt_at: nextAttemptAt(options.lease), attempts: eb("attempts", "+", 1) }))
    .where("id", "in", (eb) =>
      eb
        .selectFrom("orders")
        .select("id")
        .where("stock_synced_at", "is", null)
        .where("status", "<>", "pending")
        .where("updated_at", "<", sql<Date>`now() - make_interval(secs => ${options.unchangedForMs / 1000})`)
        .where((w) => w.or([w("next_attempt_at", "is", null), w("next_attempt_at", "<=", sql<Date>`now()`)]))
        .orderBy("updated_at")
        .limit(options.limit)
        .forUpdate()
        .skipLocked(),
    )
    .where("stock_synced_at", "is", null)
    .returning(["id", "status"])
    .execute();
}

/**
 * Records that inventory acknowledged the stock action of `status` for these
 * orders. Orders that moved on meanwhile are left alone: their new state owes
 * its own action. Returns the ids that were marked.
 */
export async function markStockSynced(db: Db, ids: readonly string[], status: OrderStatus): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .updateTable("orders")
    .set({ stock_synced_at: sql<Date>`now()` })
    .where("id", "in", ids)
    .where("status", "=", status)
    .where("stock_synced_at", "is", null)
    .returning("id")
    .execute();
  return rows.map((r) => r.id);
}

/** Marks an order as owing its stock action again (for example a late reservation of a cancelled order). */
export async function markStockUnsynced(db: Db, id: string): Promise<void> {
  await db.updateTable("orders").set({ stock_synced_at: null }).where("id", "=", id).execute();
}
