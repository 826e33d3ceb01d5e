import { sql, type Kysely, type Transaction } from "kysely";
import { jsonArrayFrom } from "kysely/helpers/postgres";
import type { Database, OrderRow } from "../db/database.ts";
import { IDEMPOTENT_ENDPOINTS, type IdempotentRequest, type StoredResponse } from "./idempotency.ts";
import { toOrder, type Order, type StoredItem } from "./order.ts";
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

/** A new order as placement stores it, with its Idempotency-Key when the request has one. */
export interface NewOrder extends Omit<PendingOrder, "created_at"> {
  idempotency?: { request: IdempotentRequest; lockMs: number };
}

/**
 * Stores new pending orders with their lines and Idempotency-Keys in one
 * statement (one round trip, one commit, whatever the number of orders): the
 * inserts run as data-modifying CTEs over the batch passed as JSON, and the
 * foreign key is checked at the end of the statement. A key that exists
 * already, or that an earlier order of the same batch uses, stores nothing
 * for its order: that order's answer is undefined (the caller then treats
 * the request as a repeat, see takeOver). Answers follow `orders`.
 */
export async function storePendingOrders(db: Db, orders: readonly NewOrder[]): Promise<(PendingOrder | undefined)[]> {
  const input = orders.map((o, ord) => ({
    ord,
    id: o.id,
    user_id: o.user_id,
    subject: o.idempotency?.request.subject ?? null,
    endpoint: o.idempotency?.request.endpoint ?? null,
    key: o.idempotency?.request.key ?? null,
    request_hash: o.idempotency?.request.requestHash ?? null,
    lock_secs: o.idempotency ? o.idempotency.lockMs / 1000 : null,
  }));
  const items = orders.flatMap((o) => o.items.map((i) => ({ order_id: o.id, product_id: i.product_id, quantity: i.quantity })));
  // The first use of a key in the batch (ord order) is the one stored; ON
  // CONFLICT skips the rest as it skips keys stored before.
  const { rows } = await sql<{ id: string; created_at: Date }>`
    with input as (
      select * from jsonb_to_recordset(${JSON.stringify(input)}::jsonb)
        as t(ord int, id uuid, user_id text, subject text, endpoint text, key text, request_hash text, lock_secs float8)
    ),
    new_keys as (
      insert into idempotency_keys (subject, endpoint, key, request_hash, order_id, locked_until)
      select subject, endpoint, key, request_hash, id, now() + make_interval(secs => lock_secs) from input where key is not null order by ord
      on conflict (subject, endpoint, key) do nothing
      returning order_id
    ),
    new_orders as (
      insert into orders (id, user_id, status)
      select id, user_id, 'pending' from input where key is null or id in (select order_id from new_keys) order by ord
      returning id, created_at
    ),
    new_items as (
      insert into order_items (order_id, product_id, quantity)
      select i.order_id, i.product_id, i.quantity
      from jsonb_to_recordset(${JSON.stringify(items)}::jsonb) as i(order_id uuid, product_id uuid, quantity int)
      where i.order_id in (select id from new_orders)
      returning 1
    )
    select id, created_at from new_orders`.execute(db);
  const stored = new Map(rows.map((r) => [r.id, r.created_at]));
  return orders.map(({ idempotency: _, ...order }) => {
    const created_at = stored.get(order.id);
    return created_at && { ...order, created_at };
  });
}

/** A guarded state change asked of one order. */
export interface TransitionRequest {
  id: string;
  transition: Transition;
}

/**
 * Applies transitions to orders in one statement per round, each guarded by
 * its own starting states, and answers each with the order afterwards, or
 * undefined when its guard did not match. The new state owes inventory its
 * stock action (stock_synced_at = null). Several changes of one order (a
 * cancel and a fulfil racing) go in successive rounds in the order given,
 * so exactly as many win as would one after another.
 */
export async function applyTransitions(db: Db, changes: readonly TransitionRequest[]): Promise<(Order | undefined)[]> {
  const answers: (Order | undefined)[] = changes.map(() => undefined);
  // Round k holds the k-th change of each order.
  const rounds: number[][] = [];
  const seen = new Map<string, number>();
  changes.forEach((change, i) => {
    const round = seen.get(change.id) ?? 0;
    seen.set(change.id, round + 1);
    (rounds[round] ??= []).push(i);
  });
  for (const round of rounds) {
    const input = round.map((i) => ({ id: changes[i]!.id, from_states: changes[i]!.transition.from, to_state: changes[i]!.transition.to }));
    const { rows } = await sql<OrderRow & { items: StoredItem[] }>`
      with input as (
        select * from jsonb_to_recordset(${JSON.stringify(input)}::jsonb) as t(id uuid, from_states text[], to_state text)
      ),
      changed as (
        update orders o
        set status = i.to_state, updated_at = now(), stock_synced_at = null, next_attempt_at = null, attempts = 0
        from input i
        where o.id = i.id and o.status = any(i.from_states)
        returning o.*
      )
      select c.*, coalesce((
        select jsonb_agg(jsonb_build_object('product_id', oi.product_id, 'quantity', oi.quantity,
          'unit_price_minor', oi.unit_price_minor, 'currency', oi.currency) order by oi.product_id)
        from order_items oi where oi.order_id = c.id), '[]'::jsonb) as items
      from changed c`.execute(db);
    const changed = new Map(rows.map((row) => [row.id, toOrder(row, row.items)]));
    for (const i of round) answers[i] = changed.get(changes[i]!.id);
  }
  return answers;
}

/** How a pending order is settled: confirmed at inventory's prices, or rejected. */
export type Settlement = { id: string; answer: StoredResponse } & (
  | { outcome: "confirmed"; priced: PricedOrder; confirmedAt: Date }
  | { outcome: "rejected"; reason: string; stockSynced: boolean }
);

/**
 * Settles pending orders in one statement: each is confirmed (its lines
 * priced as inventory reserved them, updated_at = `confirmedAt`, chosen by
 * the caller because the answer shows it) or rejected (owing inventory a
 * release unless `stockSynced` says nothing is held), and its unfinished
 * Idempotency-Key, if any, is answered with `answer`, in the same
 * statement, so whoever settles an order answers its key too. Each order
 * keeps its own guard: one that is no longer pending is left alone. Answers
 * follow `settlements`: whether that order was pending (and is now
 * settled). An order listed twice is settled by its first settlement.
 */
export async function settleOrders(db: Db, settlements: readonly Settlement[]): Promise<boolean[]> {
  const seen = new Set<string>();
  const first = settlements.map((s) => {
    if (seen.has(s.id)) return false;
    seen.add(s.id);
    return true;
  });
  const input = settlements
    .filter((_, i) => first[i])
    .map((s) => ({
      id: s.id,
      status: s.outcome === "confirmed" ? CONFIRM.to : REJECT.to,
      total_minor: s.outcome === "confirmed" ? s.priced.total_minor : null,
      currency: s.outcome === "confirmed" ? s.priced.currency : null,
      rejection_reason: s.outcome === "rejected" ? s.reason : null,
      updated_at: s.outcome === "confirmed" ? s.confirmedAt.toISOString() : null,
      stock_synced: s.outcome === "rejected" && s.stockSynced,
      response_status: s.answer.status,
      response_body: s.answer.body,
    }));
  const prices = settlements.flatMap((s, i) =>
    first[i] && s.outcome === "confirmed"
      ? s.priced.items.map((item) => ({ order_id: s.id, ...item, currency: s.priced.currency }))
      : [],
  );
  // Confirming and rejecting both start from pending (status.ts).
  const from = [...new Set([...CONFIRM.from, ...REJECT.from])];
  const { rows } = await sql<{ id: string }>`
    with input as (
      select * from jsonb_to_recordset(${JSON.stringify(input)}::jsonb) as t(
        id uuid, status text, total_minor bigint, currency text, rejection_reason text, updated_at timestamptz,
        stock_synced boolean, response_status int, response_body jsonb)
    ),
    settled as (
      update orders o
      set status = i.status, total_minor = i.total_minor, currency = i.currency, rejection_reason = i.rejection_reason,
        updated_at = coalesce(i.updated_at, now()), stock_synced_at = case when i.stock_synced then now() end,
        next_attempt_at = null, attempts = 0
      from input i
      where o.id = i.id and o.status = any(${from}::text[])
      returning o.id
    ),
    priced as (
      update order_items oi set unit_price_minor = p.unit_price_minor, currency = p.currency
      from jsonb_to_recordset(${JSON.stringify(prices)}::jsonb) as p(order_id uuid, product_id uuid, unit_price_minor bigint, currency text)
      where oi.order_id = p.order_id and oi.product_id = p.product_id and p.order_id in (select id from settled)
      returning 1
    ),
    answered as (
      update idempotency_keys k set response_status = i.response_status, response_body = i.response_body, locked_until = null
      from input i
      where k.order_id = i.id and k.endpoint = ${IDEMPOTENT_ENDPOINTS.placeOrder} and k.response_status is null
        and i.id in (select id from settled)
      returning 1
    )
    select id from settled`.execute(db);
  const settled = new Set(rows.map((r) => r.id));
  return settlements.map((s, i) => first[i] === true && settled.has(s.id));
}
/** A state change starts the new state's background work afresh (see the reconciler's claims). */
const FRESH_DEBT = { next_attempt_at: null, attempts: 0 } as const;

/** One order with its lines, or undefined; only when `owner` placed it, if `owner` is given. */
export async function findOrder(db: Db, id: string, owner?: string): Promise<Order | undefined> {
  let q = selectOrders(db).where("orders.id", "=", id);
  if (owner !== undefined) q = q.where("orders.user_id", "=", owner);
  const row = await q.executeTakeFirst();
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

/**
 * Records, in one statement, that inventory acknowledged the stock action
 * of each order's `status`; like {@link markStockSynced}, an order that
 * moved on meanwhile is left alone. Answers follow `acks`: whether that
 * order was marked.
 */
export async function acknowledgeStock(db: Db, acks: readonly { id: string; status: OrderStatus }[]): Promise<boolean[]> {
  const { rows } = await sql<{ id: string; status: OrderStatus }>`
    update orders o set stock_synced_at = now()
    from jsonb_to_recordset(${JSON.stringify(acks)}::jsonb) as a(id uuid, status text)
    where o.id = a.id and o.status = a.status and o.stock_synced_at is null
    returning o.id, o.status`.execute(db);
  const marked = new Set(rows.map((r) => `${r.id} ${r.status}`));
  return acks.map((a) => marked.has(`${a.id} ${a.status}`));
}

/** Marks an order as owing its stock action again (for example a late reservation of a cancelled order). */
export async function markStockUnsynced(db: Db, id: string): Promise<void> {
  await db.updateTable("orders").set({ stock_synced_at: null }).where("id", "=", id).execute();
}
