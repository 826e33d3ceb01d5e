import { sql, type Kysely, type Transaction } from "kysely";
import type { Database, MovementKind, StockMovementRow } from "../db/database.ts";

/** A query runner: the pool, or the transaction a use case opened. */
export type Db = Kysely<Database> | Transaction<Database>;

/** A stock level locked for change, with the price of its product. */
export interface LockedStock {
  product_id: string;
  on_hand: number;
  reserved: number;
  price_minor: bigint;
  currency: string;
}

/**
 * Locks the stock rows of `productIds` for the rest of the transaction and
 * returns them (unknown products are absent). Rows are locked in product id
 * order, the one order every writer uses, so two transactions touching
 * overlapping products queue up behind each other instead of deadlocking.
 */
export async function lockStock(tx: Transaction<Database>, productIds: readonly string[]): Promise<LockedStock[]> {
  return tx
    .selectFrom("stock_levels as s")
    .innerJoin("products as p", "p.id", "s.product_id")
    .select(["s.product_id", "s.on_hand", "s.reserved", "p.price_minor", "p.currency"])
    .where("s.product_id", "in", productIds)
    .orderBy("s.product_id")
    .forNoKeyUpdate("s")
    .execute();
}

/** One change to a stock level and the ledger entry that records it. */
export interface Movement {
  productId: string;
  kind: MovementKind;
  onHandDelta: number;
  reservedDelta: number;
  orderId: string | null;
  note: string;
  actor: string;
}

/**
 * Applies `movements` to the stock levels and writes one ledger row for
 * each, in a single statement: the only place stock levels change, so the
 * ledger always sums to them. The caller holds the row locks (lockStock)
 * and has checked the result is valid; the update's guard (0 <= reserved
 * <= on_hand) is the last line of defence and a violation aborts the
 * transaction. Several movements may name the same product.
 */
export async function moveStock(tx: Transaction<Database>, movements: readonly Movement[]): Promise<StockMovementRow[]> {
  const column = <K extends keyof Movement>(key: K) => movements.map((m) => m[key]);
  const { rows } = await sql<StockMovementRow & { products: number; moved: number }>`
    WITH d AS (
      SELECT * FROM unnest(
        ${column("productId")}::uuid[], ${column("kind")}::text[], ${column("onHandDelta")}::int[],
        ${column("reservedDelta")}::int[], ${column("orderId")}::uuid[], ${column("note")}::text[], ${column("actor")}::text[]
      ) AS d(product_id, kind, on_hand_delta, reserved_delta, order_id, note, actor)
    ),
    totals AS (
      SELECT product_id, sum(on_hand_delta)::int AS on_hand_delta, sum(reserved_delta)::int AS reserved_delta
      FROM d GROUP BY product_id
    ),
    moved AS (
      UPDATE stock_levels s
      SET on_hand = s.on_hand + t.on_hand_delta, reserved = s.reserved + t.reserved_delta, updated_at = now()
      FROM totals t
      WHERE s.product_id = t.product_id
        AND s.reserved + t.reserved_delta >= 0
        AND s.on_hand + t.on_hand_delta >= s.reserved + t.reserved_delta
      RETURNING s.product_id
    ),
    ledger AS (
      INSERT INTO stock_movements (product_id, kind, on_hand_delta, reserved_delta, order_id, note, actor)
      SELECT product_id, kind, on_hand_delta, reserved_delta, order_id, note, actor FROM d
      RETURNING *
    )
    SELECT ledger.*, (SELECT count(*) FROM totals)::int AS products, (SELECT count(*) FROM moved)::int AS moved
    FROM ledger ORDER BY ledger.id
  `.execute(tx);
  const first = rows[0];
  if (first === undefined || first.moved !== first.products) {
    throw new Error(`stock movement refused by its guard: ${JSON.stringify(movements)}`);
  }
  return rows.map(({ products: _products, moved: _moved, ...movement }) => movement);
}
