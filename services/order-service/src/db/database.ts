import type { ColumnType, Selectable } from "kysely";
import type { OrderStatus } from "../orders/status.ts";

/** The orders database as Kysely sees it. */
export interface Database {
  orders: OrdersTable;
  order_items: OrderItemsTable;
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
