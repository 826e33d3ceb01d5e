import { invalidCursor, orderNotFound } from "../errors.ts";
import type { OrderDeps } from "./deps.ts";
import type { Order } from "./order.ts";
import { findOrder, listOrders as selectPage } from "./repository.ts";
import type { OrderStatus } from "./status.ts";

/** One order, or order_not_found. */
export async function getOrder(deps: Pick<OrderDeps, "db">, id: string): Promise<Order> {
  const order = await findOrder(deps.db, id);
  if (!order) throw orderNotFound(id);
  return order;
}

/** A page of orders and the cursor of the next page (null on the last one). */
export interface OrderPage {
  data: Order[];
  next_cursor: string | null;
}

/**
 * Lists orders newest first with keyset pagination on the id (UUIDv7 ids
 * sort by creation time), so a page costs the same however deep it is and
 * orders created meanwhile never shift the pages.
 */
export async function listOrders(
  deps: Pick<OrderDeps, "db">,
  query: { user_id?: string; status?: OrderStatus; limit: number; cursor?: string },
): Promise<OrderPage> {
  const beforeId = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const rows = await selectPage(deps.db, {
    user_id: query.user_id,
    status: query.status,
    beforeId,
    limit: query.limit + 1,
  });
  const data = rows.slice(0, query.limit);
  const last = data.at(-1);
  return { data, next_cursor: rows.length > query.limit && last ? encodeCursor(last.id) : null };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Opaque to clients so the keyset can change without breaking them.
function encodeCursor(id: string): string {
  return Buffer.from(`o1:${id}`).toString("base64url");
}

function decodeCursor(cursor: string): string {
  const [version, id] = Buffer.from(cursor, "base64url").toString().split(":");
  if (version !== "o1" || id === undefined || !UUID.test(id)) throw invalidCursor();
  return id;
}
