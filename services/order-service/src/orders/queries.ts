import { invalidCursor, invalidDateRange, orderNotFound } from "../errors.ts";
import type { OrderDeps } from "./deps.ts";
import type { Order } from "./order.ts";
import type { OrderAccess } from "./policy.ts";
import { findOrder, listOrders as selectPage, type ListPosition, type OrderFilters } from "./repository.ts";

/** One order the caller may read, or order_not_found (also for an order of someone else). */
export async function getOrder(deps: Pick<OrderDeps, "db">, id: string, access: OrderAccess): Promise<Order> {
  const order = await findOrder(deps.db, id, access.owner);
  if (!order) throw orderNotFound(id);
  return order;
}

/** A page of orders and the cursor of the next page (null on the last one). */
export interface OrderPage {
  data: Order[];
  next_cursor: string | null;
}

/**
 * Lists orders newest first with keyset pagination on (created_at, id): a
 * page costs the same however deep it is, and orders created meanwhile never
 * shift the pages, so a walk sees every order that existed when it started
 * exactly once. `created_after` is inclusive and `created_before` exclusive,
 * so consecutive windows never overlap.
 */
export async function listOrders(
  deps: Pick<OrderDeps, "db">,
  query: OrderFilters & { limit: number; cursor?: string },
): Promise<OrderPage> {
  const { cursor, limit, ...filters } = query;
  if (
    filters.created_after !== undefined &&
    filters.created_before !== undefined &&
    Date.parse(filters.created_after) > Date.parse(filters.created_before)
  ) {
    throw invalidDateRange();
  }
  const after = cursor === undefined ? undefined : decodeCursor(cursor);
  const rows = await selectPage(deps.db, { ...filters, after, limit: limit + 1 });
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    data: page.map((row) => row.order),
    next_cursor: rows.length > limit && last ? encodeCursor(last.position) : null,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MICROSECOND_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

// Opaque to clients (base64url of a versioned position) so the keyset can
// change without breaking them; a cursor of another version is refused.
function encodeCursor(position: ListPosition): string {
  return Buffer.from(`o2 ${position.created_at} ${position.id}`).toString("base64url");
}

// Date.parse rolls 2024-02-30 over to March and accepts year 0, which
// PostgreSQL refuses: the instant must print back as it was written.
function isRealInstant(timestamp: string): boolean {
  const ms = Date.parse(timestamp);
  return !Number.isNaN(ms) && ms >= Date.parse("0001-01-01T00:00:00Z") && new Date(ms).toISOString().slice(0, 19) === timestamp.slice(0, 19);
}

function decodeCursor(cursor: string): ListPosition {
  const [version, created_at, id, ...rest] = Buffer.from(cursor, "base64url").toString().split(" ");
  if (
    version !== "o2" ||
    rest.length > 0 ||
    created_at === undefined ||
    !MICROSECOND_TIMESTAMP.test(created_at) ||
    !isRealInstant(created_at) ||
    id === undefined ||
    !UUID.test(id)
  ) {
    throw invalidCursor();
  }
  return { created_at, id };
}
