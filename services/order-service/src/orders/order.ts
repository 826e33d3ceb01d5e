import type { OrderRow } from "../db/database.ts";
import type { OrderStatus } from "./status.ts";

/** One line of an order as the API shows it. Prices are null until the order is confirmed. */
export interface OrderItem {
  product_id: string;
  quantity: number;
  unit_price_minor: number | null;
  line_total_minor: number | null;
  currency: string | null;
}

/** An order as the API shows it. */
export interface Order {
  id: string;
  user_id: string;
  status: OrderStatus;
  items: OrderItem[];
  total_minor: number | null;
  currency: string | null;
  rejection_reason: string | null;
  created_at: string;
  updated_at: string;
}

/** A stored line: what the order_items table holds. */
export interface StoredItem {
  product_id: string;
  quantity: number;
  unit_price_minor: number | null;
  currency: string | null;
}

/** What the API shows of an order's row. */
export type OrderFields = Pick<
  OrderRow,
  "id" | "user_id" | "status" | "total_minor" | "currency" | "rejection_reason" | "created_at" | "updated_at"
>;

/** Builds the API view of an order from its row and its stored lines. */
export function toOrder(row: OrderFields, items: readonly StoredItem[]): Order {
  return {
    id: row.id,
    user_id: row.user_id,
    status: row.status,
    items: items.map((i) => ({
      product_id: i.product_id,
      quantity: i.quantity,
      unit_price_minor: i.unit_price_minor,
      line_total_minor: i.unit_price_minor === null ? null : i.unit_price_minor * i.quantity,
      currency: i.currency === null ? null : i.currency.trim(),
    })),
    total_minor: row.total_minor,
    currency: row.currency === null ? null : row.currency.trim(),
    rejection_reason: row.rejection_reason,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}
