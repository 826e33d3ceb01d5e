import { sql, type Kysely } from "kysely";

// Frozen: a migration describes the schema as it was on the day it shipped.
// Change the function with a new migration (CREATE OR REPLACE), never here.

/**
 * reserve_stock(): the whole of a reservation in one call, so the hot path
 * of every order is one round trip and one commit. Each statement of a
 * plpgsql function takes a fresh snapshot, so the availability read after
 * the locks sees every change committed before them. The rows returned are
 * the stock as it was before the reservation; `reserved_now` is false when
 * nothing was reserved (a line unknown or short, or the order id taken).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE FUNCTION reserve_stock(
      p_order_id uuid, p_product_ids uuid[], p_quantities int[], p_ttl_seconds int, p_lock_timeout_ms int
    ) RETURNS TABLE (
      product_id uuid, on_hand int, reserved int, price_minor bigint, currency char(3),
      reserved_now boolean, expires_at timestamptz, created_at timestamptz
    ) LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    BEGIN
      -- A call must not wait for locks past its deadline (0: no deadline).
      IF p_lock_timeout_ms > 0 THEN
        PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
      END IF;
      -- A repeat is answered from the existing reservation. Waiting for its
      -- row first (before any stock row) keeps the lock order of release,
      -- commit and expiry, which lock the reservation and then its stock:
      -- taken the other way round, the two would deadlock.
      PERFORM 1 FROM reservations r WHERE r.order_id = p_order_id FOR SHARE;
      IF FOUND THEN
        RETURN;
      END IF;
      -- Product id order: the one order every writer locks stock rows in.
      PERFORM 1 FROM stock_levels s WHERE s.product_id = ANY (p_product_ids) ORDER BY s.product_id FOR NO KEY UPDATE;
      -- A new statement, a new snapshot: the locked rows as they are now.
      RETURN QUERY
        WITH before AS (
          SELECT s.product_id, s.on_hand, s.reserved, p.price_minor, p.currency, w.quantity
          FROM unnest(p_product_ids, p_quantities) AS w(product_id, quantity)
          JOIN stock_levels s ON s.product_id = w.product_id
          JOIN products p ON p.id = w.product_id
        ),
        verdict AS (
          SELECT count(*) = cardinality(p_product_ids) AND bool_and(b.on_hand - b.reserved >= b.quantity) AS ok
          FROM before b
        ),
        reservation AS (
          INSERT INTO reservations (order_id, status, expires_at)
          SELECT p_order_id, 'reserved', now() + make_interval(secs => p_ttl_seconds) FROM verdict WHERE ok
          ON CONFLICT (order_id) DO NOTHING
          RETURNING *
        ),
        lines AS (
          INSERT INTO reservation_lines (order_id, product_id, quantity, unit_price_minor, currency)
          SELECT r.order_id, b.product_id, b.quantity, b.price_minor, b.currency FROM reservation r, before b
        ),
        moved AS (
          UPDATE stock_levels s SET reserved = s.reserved + b.quantity, updated_at = now()
          FROM reservation r, before b WHERE s.product_id = b.product_id
        ),
        ledger AS (
          INSERT INTO stock_movements (product_id, kind, on_hand_delta, reserved_delta, order_id)
          SELECT b.product_id, 'reserve', 0, b.quantity, r.order_id FROM reservation r, before b
        )
        SELECT b.product_id, b.on_hand, b.reserved, b.price_minor, b.currency,
               r.order_id IS NOT NULL, r.expires_at, r.created_at
        FROM before b LEFT JOIN reservation r ON true
        ORDER BY b.product_id;
    END
    $fn$
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION reserve_stock(uuid, uuid[], int[], int, int)`.execute(db);
}
