import { sql, type Kysely, type Transaction } from "kysely";
import { jsonArrayFrom } from "kysely/helpers/postgres";
import type { Database, OrderRow } from "../db/database.ts";
import { toOrder, type Order } from "./order.ts";
import { CONFIRM, type OrderStatus, type Transition } from "./status.ts";

type Db = Kysely<Database> | Transaction<Database>;

/** An order's lines as priced by inventory, ready to be stored. */
export interface PricedOrder {
  items: { product_id: string; unit_price_minor: number }[];
  total_minor: number;
  currency: string;
}

/**
 * Stores a new pending order with its lines in one statement (one round
 * trip): the order insert runs as a data-modifying CTE next to the lines
 * insert, and the foreign key is checked at the end of the statement.
 */
export async function insertPendingOrder(
  db: Db,
  order: { id: string; user_id: string; items: readonly { product_id: string; quantity: number }[] },
): Promise<OrderRow> {
  return db
    .with("new_order", (qc) =>
      qc.insertInto("orders").values({ id: order.id, user_id: order.user_id, status: "pending" }).returningAll(),
    )
    .with("new_items", (qc) =>
      qc
        .insertInto("order_items")
        .values(order.items.map((i) => ({ order_id: order.id, product_id: i.product_id, quantity: i.quantity })))
        .returning("product_id"),
    )
    .selectFrom("new_order")
    .selectAll()
    .executeTakeFirstOrThrow();
}

/**
 * Applies a transition if the order is in one of its starting states, and
 * returns the order afterwards, or undefined when the guard did not match.
 * The new state owes inventory its stock action (stock_synced_at = null)
 * unless `stockSynced` says nothing is owed.
 */
export async function applyTransition(
  db: Db,
  id: string,
  transition: Transition,
  changes: { rejection_reason?: string; stockSynced?: boolean } = {},
): Promise<Order | undefined> {
  const row = await db
    .with("changed", (qc) =>
      qc
        .updateTable("orders")
        .set({
          status: transition.to,
          updated_at: sql<Date>`now()`,
          stock_synced_at: changes.stockSynced ? sql<Date>`now()` : null,
          ...(changes.rejection_reason === undefined ? {} : { rejection_reason: changes.rejection_reason }),
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
 * Confirms a pending order and stores the prices inventory reserved it at,
 * in one statement. Returns undefined when the order was no longer pending.
 */
export async function confirmOrder(db: Db, id: string, priced: PricedOrder): Promise<OrderRow | undefined> {
  const productIds = priced.items.map((i) => i.product_id);
  const prices = priced.items.map((i) => i.unit_price_minor);
  return db
    .with("confirmed", (qc) =>
      qc
        .updateTable("orders")
        .set({
          status: CONFIRM.to,
          total_minor: priced.total_minor,
          currency: priced.currency,
          updated_at: sql<Date>`now()`,
        })
        .where("id", "=", id)
        .where("status", "in", CONFIRM.from)
        .returningAll(),
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
    .selectFrom("confirmed")
    .selectAll()
    .executeTakeFirst();
}

/** One order with its lines, or undefined. */
export async function findOrder(db: Db, id: string): Promise<Order | undefined> {
  const row = await selectOrders(db).where("orders.id", "=", id).executeTakeFirst();
  return row && toOrder(row, row.items);
}

/** Orders newest first, after the keyset `beforeId` (exclusive), with optional filters. */
export async function listOrders(
  db: Db,
  query: { user_id?: string; status?: OrderStatus; beforeId?: string; limit: number },
): Promise<Order[]> {
  let q = selectOrders(db).orderBy("orders.id", "desc").limit(query.limit);
  if (query.user_id !== undefined) q = q.where("orders.user_id", "=", query.user_id);
  if (query.status !== undefined) q = q.where("orders.status", "=", query.status);
  if (query.beforeId !== undefined) q = q.where("orders.id", "<", query.beforeId);
  const rows = await q.execute();
  return rows.map((row) => toOrder(row, row.items));
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

/** Orders that owe inventory a stock action, oldest change first. */
export async function findStockUnsynced(
  db: Db,
  options: { unchangedForMs: number; limit: number },
): Promise<{ id: string; status: OrderStatus }[]> {
  return db
    .selectFrom("orders")
    .select(["id", "status"])
    .where("stock_synced_at", "is", null)
    .where("status", "<>", "pending")
    .where("updated_at", "<", sql<Date>`now() - make_interval(secs => ${options.unchangedForMs / 1000})`)
    .orderBy("updated_at")
    .limit(options.limit)
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
