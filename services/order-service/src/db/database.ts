import type { ColumnType, Generated, Selectable } from "kysely";
import type { OrderStatus } from "../orders/status.ts";

/** The orders database as Kysely sees it. */
export interface Database {
  orders: OrdersTable;
  order_items: OrderItemsTable;
  idempotency_keys: IdempotencyKeysTable;
}

export interface OrdersTable {
  /** UUIDv7: time ordered, so it doubles as the keyset for listing newest first. */
  id: string;
  user_id: string;
  status: OrderStatus;
  /** Sum of the line totals in minor units; null until the order is confirmed. */
  total_minor: number | null;
  currency: string | null;
  rejection_reason: string | null;
  /**
   * When inventory last acknowledged the stock action the current status
   * calls for (confirm, release or commit the reservation); null while one
   * is owed. See orders/stock-sync.ts.
   */
  stock_synced_at: Date | null;
  /**
   * Background work on the order (re-driving it while pending, paying its
   * stock debt after) leaves it alone until then: the lease of the worker
   * that claimed it, and the backoff after a failed attempt. See
   * orders/reconciler.ts.
   */
  next_attempt_at: Date | null;
  /** Background attempts at the order's current state; drives the backoff. */
  attempts: Generated<number>;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, never, Date>;
}

export interface OrderItemsTable {
  order_id: string;
  product_id: string;
  quantity: number;
  /** Unit price captured from the reservation; null until confirmed. */
  unit_price_minor: number | null;
  currency: string | null;
}

export type OrderRow = Selectable<OrdersTable>;

/** A request made under an Idempotency-Key, and its response once final. See orders/idempotency.ts. */
export interface IdempotencyKeysTable {
  /** Whose key it is: the subject of the token that sent it. A key is unique per subject and endpoint. */
  subject: string;
  /** The endpoint the key is scoped to, such as `POST /orders/:id/cancel`. */
  endpoint: string;
  key: string;
  /** SHA-256 of the request (endpoint, path parameters, canonical body). */
  request_hash: string;
  /** The order the request created (POST /orders) or acted on. */
  order_id: string;
  /** While in the future, a request is working on the key; others get 409. */
  locked_until: Date | null;
  /** The final response, replayed for the same key; null until there is one. */
  response_status: number | null;
  response_body: ColumnType<unknown, string | null, string | null>;
  created_at: ColumnType<Date, never, never>;
}
