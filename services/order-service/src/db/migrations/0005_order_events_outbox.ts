import { sql, type Kysely } from "kysely";

// Frozen: never edit a migration that has run anywhere; add a new one.

// The transactional outbox of order events (see the README, "Events").
//
// The table, its indexes and its notification are the ones every service
// shares (packages/events reads and relays them). The events themselves are
// written by statement-level AFTER triggers on `orders` with transition
// tables: whatever changes an order (the batched steps, the reconciler, an
// operator's SQL), its event is recorded by the same statement, in the same
// transaction, so it exists if and only if the change committed; and a batch
// statement records all its events in one INSERT, so a batch of orders costs
// one more insert, not one per order.
//
//   insert                  -> orders.v1.order.placed
//   status to confirmed     -> orders.v1.order.confirmed
//   status to rejected      -> orders.v1.order.rejected
//   status to cancelled     -> orders.v1.order.cancelled (with previousStatus)
//   status to fulfilled     -> orders.v1.order.fulfilled
//
// Updates that leave the status alone (stock acknowledgements, the
// reconciler's leases) record nothing and wake nobody.
//
// `data` is the event message in the proto3 JSON mapping (orders/v1/events.proto):
// lowerCamelCase names, enums by name, int64 as strings, Timestamps in RFC 3339
// (UTC, microseconds), fields without a value omitted. The order is read as the
// statement left it: AFTER STATEMENT triggers fire once every part of the
// statement is done, so the lines a placing statement inserts in another CTE
// and the prices a settling statement writes are in the snapshot.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table outbox (
      -- order of recording; used by the relay (per-subject order)
      position bigint generated always as identity primary key,
      -- ce-id and Nats-Msg-Id
      id uuid not null default gen_random_uuid() unique,
      -- listing pages by (txid, position) and shows only rows whose txid is older than every
      -- running transaction (txid < pg_snapshot_xmin(pg_current_snapshot())), so a reader polling
      -- with a cursor never skips an event committed late. txid is the recording transaction, or
      -- the newest transaction begun before the row if that is newer: a statement that took its
      -- transaction id early and then waited for a row another transaction was changing (a cancel
      -- racing a settle) changes it after that transaction, and its event must be listed after
      -- that one's. Either is at least the recording transaction's, so nothing is ever skipped.
      txid xid8 not null default greatest(pg_current_xact_id(), (pg_snapshot_xmax(pg_current_snapshot())::text::bigint - 1)::text::xid8),
      type text not null,          -- ce-type and NATS subject
      subject text not null,       -- ce-subject: the order id (order and reservation events) or product id
      data jsonb not null,         -- the event message in the proto3 JSON mapping (camelCase, int64 as string)
      time timestamptz not null default now(),  -- ce-time
      published_at timestamptz     -- null until the relay has published it
    )`.execute(db);
  await sql`create index outbox_pending_idx on outbox (position) where published_at is null`.execute(db);
  await sql`create index outbox_pending_subject_idx on outbox (subject, position) where published_at is null`.execute(db);
  await sql`create index outbox_log_idx on outbox (txid, position)`.execute(db);
  await sql`create index outbox_type_log_idx on outbox (type, txid, position)`.execute(db);
  await sql`create index outbox_published_idx on outbox (published_at) where published_at is not null`.execute(db);
  // Wakes the relay (LISTEN outbox): one notification per statement that records events.
  await sql`
    create function outbox_notify() returns trigger language plpgsql as $$
    begin perform pg_notify('outbox', ''); return null; end $$`.execute(db);
  await sql`create trigger outbox_notify after insert on outbox for each statement execute function outbox_notify()`.execute(db);

  // A google.protobuf.Timestamp in the proto3 JSON mapping: RFC 3339 in UTC, microseconds.
  // One expression, so the planner inlines it.
  await sql`
    create function order_event_time(t timestamptz) returns text language sql stable parallel safe
    return to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.execute(db);

  // An orders.v1.Order in the proto3 JSON mapping, from an order's columns and
  // its lines (already mapped, by product id; null when it has none). Fields without a value
  // are null here: the caller strips them from the whole event at once. One
  // expression, so the planner inlines it.
  await sql`
    create function order_event_order(
      id uuid, user_id text, status text, lines jsonb, total_minor bigint, currency text,
      rejection_reason text, created_at timestamptz, updated_at timestamptz
    ) returns jsonb language sql stable parallel safe
    return jsonb_build_object(
      'id', id,
      'userId', user_id,
      'status', 'ORDER_STATUS_' || upper(status),
      'lines', lines,
      'totalMinor', total_minor::text,
      'currency', nullif(currency, ''),
      'rejectionReason', nullif(rejection_reason, ''),
      'createTime', order_event_time(created_at),
      'updateTime', order_event_time(updated_at))`.execute(db);

  // Records the events of one statement on orders, in one INSERT (nothing when
  // it changed no status: no row, no notification). A statement's events are
  // in order id order.
  //
  // The statements touch at most a batch of orders: JIT compilation (which a
  // stale row estimate can trigger) would cost more than it could save.
  await sql`
    create function orders_record_events() returns trigger language plpgsql set jit = off as $$
    begin
      if tg_op = 'INSERT' then
        if not exists (select from new_orders) then return null; end if;
        insert into outbox (type, subject, data)
        select 'orders.v1.order.placed', n.id::text,
          jsonb_strip_nulls(jsonb_build_object('order', order_event_order(n.id, n.user_id, n.status, (
              select jsonb_agg(jsonb_build_object('productId', i.product_id, 'quantity', i.quantity,
                'unitPriceMinor', i.unit_price_minor::text, 'currency', i.currency::text) order by i.product_id)
              from order_items i where i.order_id = n.id),
            n.total_minor, n.currency::text, n.rejection_reason, n.created_at, n.updated_at)))
        from new_orders n
        order by n.id;
      else
        -- The orders whose status changed, found in one pass over each table
        -- (updates that change something else are most of them).
        if not exists (
          select from (select id, status from new_orders except all select id, status from old_orders) changed
          where status <> 'pending'
        ) then return null; end if;
        insert into outbox (type, subject, data)
        select 'orders.v1.order.' || n.status, n.id::text,
          jsonb_strip_nulls(jsonb_build_object('order', order_event_order(n.id, n.user_id, n.status, (
              select jsonb_agg(jsonb_build_object('productId', i.product_id, 'quantity', i.quantity,
                'unitPriceMinor', i.unit_price_minor::text, 'currency', i.currency::text) order by i.product_id)
              from order_items i where i.order_id = n.id),
              n.total_minor, n.currency::text, n.rejection_reason, n.created_at, n.updated_at),
            'previousStatus', case when n.status = 'cancelled' then 'ORDER_STATUS_' || upper(o.status) end))
        from new_orders n join old_orders o on o.id = n.id
        where n.status <> o.status and n.status <> 'pending'
        order by n.id;
      end if;
      return null;
    end $$`.execute(db);
  await sql`
    create trigger orders_placed_events after insert on orders
    referencing new table as new_orders
    for each statement execute function orders_record_events()`.execute(db);
  await sql`
    create trigger orders_status_events after update on orders
    referencing old table as old_orders new table as new_orders
    for each statement execute function orders_record_events()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger orders_status_events on orders`.execute(db);
  await sql`drop trigger orders_placed_events on orders`.execute(db);
  await sql`drop function orders_record_events()`.execute(db);
  await sql`drop function order_event_order(uuid, text, text, jsonb, bigint, text, text, timestamptz, timestamptz)`.execute(db);
  await sql`drop function order_event_time(timestamptz)`.execute(db);
  await sql`drop table outbox`.execute(db);
  await sql`drop function outbox_notify()`.execute(db);
}
