import { sql, type Kysely } from "kysely";

// Frozen: a migration describes the schema as it was on the day it shipped.
// Change the function with a new migration (CREATE OR REPLACE), never here.
//
// reserve_stock() (0002) stays: replicas of the previous release call it
// until a rolling upgrade has replaced them all.

/**
 * reserve_orders(): a whole batch of reservations in one call, one round
 * trip and one commit, however many orders it holds. Orders come as
 * parallel arrays: `p_order_ids` (each at most once) with `p_actors`, who
 * asked for each order's reservation (a batch serves many callers, so the
 * ledger's actor travels with each order), and per line its order (1-based
 * index into p_order_ids, lines grouped by order in order), product and
 * quantity.
 *
 * Locks, in the order every writer takes them: first the batch's existing
 * reservation rows (FOR SHARE, order id order), as release, commit and
 * expiry lock the reservation before its stock; then the stock rows of the
 * new orders' products, once, in product id order. Then, in a fresh
 * snapshot, new orders are decided one by one in arrival order against the
 * running availability: all lines or none, an unknown product or a short
 * line refusing that order only. The decision is in memory, not a
 * subtransaction per order; the writes (reservations, lines, one stock
 * update per product with the summed quantity, ledger rows) are set-based,
 * in one statement.
 *
 * One row per line comes back, ordered by order then product:
 * - `reserved`: reserved now; the line with its price at reservation time.
 * - `existing`: the order has a reservation, made before this call or, for
 *   an order this call refused, by a twin call that committed while this one
 *   waited for stock locks; its lines as they are, for the caller to compare
 *   with the request.
 * - `unknown` / `short`: refused; the request's lines with `available` as
 *   the order's turn saw it (null for an unknown product).
 * - `taken`: the order was decided available, but a twin call reserved the
 *   same order id first; the caller reads that reservation.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE FUNCTION reserve_orders(
      p_order_ids uuid[], p_actors text[], p_line_orders int[], p_product_ids uuid[], p_quantities int[],
      p_ttl_seconds int, p_lock_timeout_ms int
    ) RETURNS TABLE (
      order_index int, outcome text, status text, expires_at timestamptz, created_at timestamptz,
      updated_at timestamptz, product_id uuid, quantity int, available int, unit_price_minor bigint,
      currency char(3)
    ) LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
      v_orders int := coalesce(cardinality(p_order_ids), 0);
      v_lines int := coalesce(cardinality(p_product_ids), 0);
      v_existing uuid[];
      -- The new orders' known products in id order, and their running availability.
      v_products uuid[];
      v_available int[];
      -- Per line: its product's index in v_products (null: unknown), and the
      -- availability its order saw.
      v_line_pos int[];
      v_line_available int[] := array_fill(NULL::int, ARRAY[v_lines]);
      -- Per order: existing, reserve, unknown or short.
      v_verdicts text[] := array_fill(NULL::text, ARRAY[v_orders]);
      v_first int;
      v_next int := 1;
      v_unknown boolean;
      v_short boolean;
    BEGIN
      -- A batch must not wait for locks past its callers' deadlines (0: no deadline).
      IF p_lock_timeout_ms > 0 THEN
        PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
      END IF;
      SELECT coalesce(array_agg(r.order_id), '{}') INTO v_existing
      FROM (
        SELECT r.order_id FROM reservations r WHERE r.order_id = ANY (p_order_ids) ORDER BY r.order_id FOR SHARE
      ) r;
      PERFORM 1 FROM stock_levels s
      WHERE s.product_id IN (
        SELECT l.product_id FROM unnest(p_line_orders, p_product_ids) AS l(order_index, product_id)
        WHERE p_order_ids[l.order_index] <> ALL (v_existing)
      )
      ORDER BY s.product_id FOR NO KEY UPDATE;
      -- A new statement, a new snapshot: the locked rows as they are now.
      SELECT coalesce(array_agg(s.product_id ORDER BY s.product_id), '{}'),
             coalesce(array_agg(s.on_hand - s.reserved ORDER BY s.product_id), '{}')
      INTO v_products, v_available
      FROM stock_levels s
      WHERE s.product_id IN (
        SELECT l.product_id FROM unnest(p_line_orders, p_product_ids) AS l(order_index, product_id)
        WHERE p_order_ids[l.order_index] <> ALL (v_existing)
      );
      SELECT coalesce(array_agg(k.pos::int ORDER BY l.ord), '{}') INTO v_line_pos
      FROM unnest(p_product_ids) WITH ORDINALITY AS l(product_id, ord)
      LEFT JOIN unnest(v_products) WITH ORDINALITY AS k(product_id, pos) ON k.product_id = l.product_id;

      FOR i IN 1..v_orders LOOP
        v_first := v_next;
        WHILE v_next <= v_lines AND p_line_orders[v_next] = i LOOP
          v_next := v_next + 1;
        END LOOP;
        IF p_order_ids[i] = ANY (v_existing) THEN
          v_verdicts[i] := 'existing';
          CONTINUE;
        END IF;
        v_unknown := false;
        v_short := false;
        FOR j IN v_first..v_next - 1 LOOP
          IF v_line_pos[j] IS NULL THEN
            v_unknown := true;
          ELSE
            v_line_available[j] := v_available[v_line_pos[j]];
            v_short := v_short OR v_available[v_line_pos[j]] < p_quantities[j];
          END IF;
        END LOOP;
        IF v_unknown THEN
          v_verdicts[i] := 'unknown';
        ELSIF v_short THEN
          v_verdicts[i] := 'short';
        ELSE
          v_verdicts[i] := 'reserve';
          FOR j IN v_first..v_next - 1 LOOP
            v_available[v_line_pos[j]] := v_available[v_line_pos[j]] - p_quantities[j];
          END LOOP;
        END IF;
      END LOOP;
      IF v_next <= v_lines THEN
        RAISE EXCEPTION 'reserve_orders: lines must be grouped by order, in order';
      END IF;
      IF coalesce(cardinality(p_actors), 0) <> v_orders THEN
        RAISE EXCEPTION 'reserve_orders: one actor per order';
      END IF;

      RETURN QUERY
        WITH o AS (
          SELECT o.idx::int AS idx, o.order_id, o.verdict, o.actor
          FROM unnest(p_order_ids, v_verdicts, p_actors) WITH ORDINALITY AS o(order_id, verdict, actor, idx)
        ),
        l AS (
          SELECT l.order_index, l.product_id, l.quantity, l.available
          FROM unnest(p_line_orders, p_product_ids, p_quantities, v_line_available)
            AS l(order_index, product_id, quantity, available)
        ),
        made AS (
          -- In order id order, as a concurrent batch inserting the same ids does.
          INSERT INTO reservations (order_id, status, expires_at)
          SELECT o.order_id, 'reserved', now() + make_interval(secs => p_ttl_seconds)
          FROM o WHERE o.verdict = 'reserve' ORDER BY o.order_id
          ON CONFLICT (order_id) DO NOTHING
          RETURNING *
        ),
        made_lines AS (
          SELECT o.idx, o.actor, m.order_id, l.product_id, l.quantity, p.price_minor, p.currency,
                 m.status, m.expires_at, m.created_at, m.updated_at
          FROM made m
          JOIN o ON o.order_id = m.order_id
          JOIN l ON l.order_index = o.idx
          JOIN products p ON p.id = l.product_id
        ),
        line_rows AS (
          INSERT INTO reservation_lines (order_id, product_id, quantity, unit_price_minor, currency)
          SELECT ml.order_id, ml.product_id, ml.quantity, ml.price_minor, ml.currency FROM made_lines ml
        ),
        moved AS (
          UPDATE stock_levels s SET reserved = s.reserved + t.quantity, updated_at = now()
          FROM (SELECT ml.product_id, sum(ml.quantity)::int AS quantity FROM made_lines ml GROUP BY ml.product_id) t
          WHERE s.product_id = t.product_id
        ),
        ledger AS (
          INSERT INTO stock_movements (product_id, kind, on_hand_delta, reserved_delta, order_id, actor)
          SELECT ml.product_id, 'reserve', 0, ml.quantity, ml.order_id, ml.actor FROM made_lines ml ORDER BY ml.idx, ml.product_id
        )
        SELECT ml.idx, 'reserved'::text, ml.status, ml.expires_at, ml.created_at, ml.updated_at,
               ml.product_id, ml.quantity, NULL::int, ml.price_minor, ml.currency
        FROM made_lines ml
        UNION ALL
        SELECT o.idx, 'existing', r.status, r.expires_at, r.created_at, r.updated_at,
               rl.product_id, rl.quantity, NULL, rl.unit_price_minor, rl.currency
        FROM o
        JOIN reservations r ON r.order_id = o.order_id
        JOIN reservation_lines rl ON rl.order_id = o.order_id
        WHERE o.verdict IN ('existing', 'unknown', 'short')
        UNION ALL
        SELECT o.idx, CASE o.verdict WHEN 'reserve' THEN 'taken' ELSE o.verdict END, NULL, NULL, NULL, NULL,
               l.product_id, l.quantity, l.available, NULL, NULL
        FROM o JOIN l ON l.order_index = o.idx
        WHERE (o.verdict IN ('unknown', 'short') AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = o.order_id))
           OR (o.verdict = 'reserve' AND o.order_id NOT IN (SELECT m.order_id FROM made m))
        ORDER BY 1, 7;
    END
    $fn$
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION reserve_orders(uuid[], text[], int[], uuid[], int[], int, int)`.execute(db);
}
