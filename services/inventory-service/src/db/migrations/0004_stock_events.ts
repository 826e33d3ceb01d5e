import { sql, type Kysely } from "kysely";

// Frozen: a migration describes the schema as it was on the day it shipped.
// Change the schema with a new migration, never by editing this one.

/**
 * The stock events (proto/inventory/v1/events.proto) and the outbox they
 * are recorded in, the same table in both services' databases (see the
 * events package). Events are written by statement-level triggers with
 * transition tables, so that an event is recorded in the very statement
 * that makes its change, whichever path makes it (reserve_orders(), the
 * statement of moveStock(), an operator's SQL), committed or rolled back
 * with it, and a batch statement records all of its events in one insert:
 *
 * - AFTER INSERT ON stock_movements: every change of stock writes ledger
 *   rows, so the ledger is where the change events come from. One
 *   stock.reserved per order (its lines with their prices from
 *   reservation_lines, its expiry from reservations, both written by the
 *   same statement), one stock.released (release, expire) or
 *   stock.committed per order, one stock.adjusted per initial, restock,
 *   write-off or count-correction row.
 * - AFTER UPDATE ON stock_levels: stock.low when a product turns low,
 *   that is when it goes from not low to low, low meaning a threshold
 *   above 0 and available stock (on_hand - reserved) below it. A product
 *   is created with its threshold and no stock, low already by that rule;
 *   one whose initial stock leaves it below its threshold is low from the
 *   start, and the ledger trigger records its stock.low, right after the
 *   initial stock.adjusted.
 *
 * `data` is the event message in the proto3 JSON mapping, as protobuf-es
 * reads it: lowerCamelCase names, enums by name, int64 as strings,
 * RFC 3339 timestamps in UTC, fields at their default left out.
 */
export async function up(db: Kysely<any>): Promise<void> {
  // The outbox as the events design has it, identical in both databases.
  await sql`
    create table outbox (
      position bigint generated always as identity primary key,
      id uuid not null default gen_random_uuid() unique,
      -- The listing's order (see the order service's outbox, the same): the recording
      -- transaction, or the newest begun before the row if newer, so that a change made after
      -- waiting for another transaction's row lock is listed after that transaction's events.
      txid xid8 not null default greatest(pg_current_xact_id(), (pg_snapshot_xmax(pg_current_snapshot())::text::bigint - 1)::text::xid8),
      type text not null,
      subject text not null,
      data jsonb not null,
      time timestamptz not null default now(),
      published_at timestamptz
    )
  `.execute(db);
  await sql`create index outbox_pending_idx on outbox (position) where published_at is null`.execute(db);
  await sql`create index outbox_pending_subject_idx on outbox (subject, position) where published_at is null`.execute(db);
  await sql`create index outbox_log_idx on outbox (txid, position)`.execute(db);
  await sql`create index outbox_type_log_idx on outbox (type, txid, position)`.execute(db);
  await sql`create index outbox_published_idx on outbox (published_at) where published_at is not null`.execute(db);
  await sql`
    create function outbox_notify() returns trigger language plpgsql as $$
    begin perform pg_notify('outbox', ''); return null; end $$
  `.execute(db);
  await sql`create trigger outbox_notify after insert on outbox for each statement execute function outbox_notify()`.execute(db);

  await sql`
    ALTER TABLE stock_levels ADD COLUMN low_stock_threshold integer NOT NULL DEFAULT 0
      CONSTRAINT stock_levels_low_stock_threshold_check CHECK (low_stock_threshold >= 0)
  `.execute(db);

  // A google.protobuf.Timestamp in the JSON mapping: RFC 3339 in UTC, in
  // microseconds as PostgreSQL keeps time.
  await sql`
    CREATE FUNCTION outbox_timestamp(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $fn$
      SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    $fn$
  `.execute(db);

  // An inventory.v1.StockLevel in the JSON mapping, as stock.adjusted and
  // stock.low both carry one.
  await sql`
    CREATE FUNCTION outbox_stock_level(on_hand int, reserved int, threshold int) RETURNS jsonb LANGUAGE sql STABLE AS $fn$
      SELECT jsonb_strip_nulls(jsonb_build_object(
        'onHand', nullif(on_hand, 0), 'reserved', nullif(reserved, 0),
        'available', nullif(on_hand - reserved, 0), 'lowStockThreshold', nullif(threshold, 0)))
    $fn$
  `.execute(db);

  // An inventory.v1.StockLow in the JSON mapping.
  await sql`
    CREATE FUNCTION outbox_stock_low(product_id uuid, sku text, on_hand int, reserved int, threshold int) RETURNS jsonb LANGUAGE sql STABLE AS $fn$
      SELECT jsonb_build_object(
        'productId', product_id, 'sku', sku, 'stock', outbox_stock_level(on_hand, reserved, threshold), 'threshold', threshold)
    $fn$
  `.execute(db);

  await sql`
    CREATE FUNCTION record_stock_movement_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      -- A statement that wrote no ledger rows (a batch that reserved
      -- nothing) records nothing, and wakes no relay.
      IF NOT EXISTS (SELECT 1 FROM new_movements) THEN
        RETURN NULL;
      END IF;
      INSERT INTO outbox (type, subject, data)
      SELECT e.type, e.subject, e.data
      FROM (
        -- first: the ledger row an event comes from; low: a stock.low
        -- that row brings, which follows the row's own event.

        -- One per order. Its reservation and lines were written by this
        -- statement too (reserve_orders()), and a trigger at the end of a
        -- statement sees all of it. (jsonb_strip_nulls reaches into the
        -- lines as well.)
        SELECT 'inventory.v1.stock.reserved' AS type, coalesce(m.order_id::text, '') AS subject, min(m.id) AS first, false AS low,
               jsonb_strip_nulls(jsonb_build_object(
                 'orderId', m.order_id,
                 'lines', jsonb_agg(jsonb_build_object(
                   'productId', m.product_id, 'quantity', m.reserved_delta,
                   'unitPriceMinor', nullif(l.unit_price_minor, 0)::text, 'currency', l.currency::text
                 ) ORDER BY m.product_id),
                 'expireTime', outbox_timestamp(r.expires_at)
               )) AS data
        FROM new_movements m
        LEFT JOIN reservation_lines l ON l.order_id = m.order_id AND l.product_id = m.product_id
        LEFT JOIN reservations r ON r.order_id = m.order_id
        WHERE m.kind = 'reserve'
        GROUP BY m.order_id, r.expires_at
        UNION ALL
        -- One per order: a release, an expiry or a commit ends all of an
        -- order's lines in one statement.
        SELECT CASE m.kind WHEN 'commit' THEN 'inventory.v1.stock.committed' ELSE 'inventory.v1.stock.released' END,
               coalesce(m.order_id::text, ''), min(m.id), false,
               jsonb_strip_nulls(jsonb_build_object(
                 'orderId', m.order_id,
                 'lines', jsonb_agg(jsonb_build_object('productId', m.product_id, 'quantity', -m.reserved_delta) ORDER BY m.product_id),
                 'status', CASE m.kind WHEN 'release' THEN 'RESERVATION_STATUS_RELEASED' WHEN 'expire' THEN 'RESERVATION_STATUS_EXPIRED' END
               ))
        FROM new_movements m
        WHERE m.kind IN ('release', 'expire', 'commit')
        GROUP BY m.kind, m.order_id
        UNION ALL
        -- One per ledger row. The stock level after it is the level at the
        -- end of the statement less the product's later rows of the same
        -- statement (usually none).
        SELECT 'inventory.v1.stock.adjusted', m.product_id::text, m.id, false,
               jsonb_build_object(
                 'productId', m.product_id,
                 'movement', jsonb_strip_nulls(jsonb_build_object(
                   'id', m.id::text, 'productId', m.product_id, 'kind', m.kind,
                   'onHandDelta', nullif(m.on_hand_delta, 0), 'reservedDelta', nullif(m.reserved_delta, 0),
                   'orderId', m.order_id, 'note', nullif(m.note, ''), 'actor', nullif(m.actor, ''),
                   'createTime', outbox_timestamp(m.created_at)
                 )),
                 'stock', outbox_stock_level(
                   s.on_hand - coalesce(later.on_hand_delta, 0), s.reserved - coalesce(later.reserved_delta, 0), s.low_stock_threshold
                 )
               )
        FROM new_movements m
        JOIN stock_levels s ON s.product_id = m.product_id
        LEFT JOIN LATERAL (
          SELECT sum(n.on_hand_delta)::int AS on_hand_delta, sum(n.reserved_delta)::int AS reserved_delta
          FROM new_movements n WHERE n.product_id = m.product_id AND n.id > m.id
        ) later ON true
        WHERE m.kind IN ('initial', 'restock', 'write_off', 'count_correction')
        UNION ALL
        -- A product created below its threshold.
        SELECT 'inventory.v1.stock.low', m.product_id::text, m.id, true,
               outbox_stock_low(m.product_id, p.sku, s.on_hand, s.reserved, s.low_stock_threshold)
        FROM new_movements m
        JOIN stock_levels s ON s.product_id = m.product_id
        JOIN products p ON p.id = m.product_id
        WHERE m.kind = 'initial' AND s.low_stock_threshold > 0 AND s.on_hand - s.reserved < s.low_stock_threshold
      ) e
      -- In the order of the ledger: a batch's orders in arrival order.
      ORDER BY e.first, e.low;
      RETURN NULL;
    END
    $fn$
  `.execute(db);
  await sql`
    CREATE TRIGGER stock_movement_events AFTER INSERT ON stock_movements
    REFERENCING NEW TABLE AS new_movements
    FOR EACH STATEMENT EXECUTE FUNCTION record_stock_movement_events()
  `.execute(db);

  await sql`
    CREATE FUNCTION record_low_stock_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
    DECLARE
      v_turned uuid[];
    BEGIN
      -- Looked for first, as a whole: most updates turn nothing low, and
      -- an insert of no rows would still wake the relay. (An EXISTS would
      -- be planned for its first row, as a nested loop over the two
      -- transition tables: quadratic in the products a batch updates.)
      SELECT array_agg(n.product_id ORDER BY n.product_id) INTO v_turned
      FROM new_levels n JOIN old_levels o ON o.product_id = n.product_id
      WHERE n.low_stock_threshold > 0 AND n.on_hand - n.reserved < n.low_stock_threshold
        AND NOT (o.low_stock_threshold > 0 AND o.on_hand - o.reserved < o.low_stock_threshold);
      IF v_turned IS NULL THEN
        RETURN NULL;
      END IF;
      INSERT INTO outbox (type, subject, data)
      SELECT 'inventory.v1.stock.low', n.product_id::text,
             outbox_stock_low(n.product_id, p.sku, n.on_hand, n.reserved, n.low_stock_threshold)
      FROM new_levels n
      JOIN products p ON p.id = n.product_id
      WHERE n.product_id = ANY (v_turned)
      ORDER BY n.product_id;
      RETURN NULL;
    END
    $fn$
  `.execute(db);
  await sql`
    CREATE TRIGGER low_stock_events AFTER UPDATE ON stock_levels
    REFERENCING OLD TABLE AS old_levels NEW TABLE AS new_levels
    FOR EACH STATEMENT EXECUTE FUNCTION record_low_stock_events()
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TRIGGER low_stock_events ON stock_levels`.execute(db);
  await sql`DROP TRIGGER stock_movement_events ON stock_movements`.execute(db);
  await sql`DROP FUNCTION record_low_stock_events()`.execute(db);
  await sql`DROP FUNCTION record_stock_movement_events()`.execute(db);
  await sql`DROP FUNCTION outbox_stock_low(uuid, text, int, int, int)`.execute(db);
  await sql`DROP FUNCTION outbox_stock_level(int, int, int)`.execute(db);
  await sql`DROP FUNCTION outbox_timestamp(timestamptz)`.execute(db);
  await sql`ALTER TABLE stock_levels DROP COLUMN low_stock_threshold`.execute(db);
  await sql`DROP TABLE outbox`.execute(db);
  await sql`DROP FUNCTION outbox_notify()`.execute(db);
}
