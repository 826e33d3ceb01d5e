import { EVENT_TYPES, isEventType, streamOf, type EventType } from "@ecommerce/events/catalogue.ts";
import { InvalidCursorError, listEvents, type EventPage, type Queryable } from "@ecommerce/events/outbox.ts";
import { CompiledQuery } from "kysely";
import { inventoryErrors } from "./errors.ts";
import type { Db } from "./stock-levels.ts";

// The stock events themselves are recorded by the database, in the
// statement that makes each change (migration 0004); this is the reading
// side: ListEvents, a feed of the outbox whether or not a broker is set up.

/** ce-source of every event this service records. */
export const INVENTORY_EVENT_SOURCE = "/inventory-service";

/** The event types inventory records, as the catalogue names them. */
export type InventoryEventType = Extract<EventType, `inventory.${string}`>;

export const INVENTORY_EVENT_TYPES = (Object.keys(EVENT_TYPES) as EventType[]).filter(
  (type): type is InventoryEventType => streamOf(type) === "INVENTORY",
);

export function isInventoryEventType(type: string): type is InventoryEventType {
  return isEventType(type) && streamOf(type) === "INVENTORY";
}

export interface ListEventsInput {
  pageSize: number;
  /** The cursor of a previous page; from the oldest event when undefined. */
  pageToken: string | undefined;
  /** Only events of this type; all when undefined. */
  type: InventoryEventType | undefined;
}

/** The events package's listing reads through the service's pool, with its bounds and its error handling. */
function queryable(db: Db): Queryable {
  return { query: (text, values = []) => db.executeQuery(CompiledQuery.raw(text, values)) };
}

/**
 * A page of recorded events, oldest first, and the token of the next one,
 * which is set even on the last page: asked again later, it returns what
 * was recorded since. A token that is not one the listing returned is
 * INVALID_ARGUMENT.
 */
export async function listStockEvents(db: Db, input: ListEventsInput): Promise<EventPage> {
  try {
    return await listEvents(queryable(db), { after: input.pageToken, type: input.type, limit: input.pageSize });
  } catch (e) {
    // 22003: a token of the right shape whose numbers overflow xid8 or bigint.
    if (e instanceof InvalidCursorError || (e as { code?: unknown }).code === "22003") {
      throw inventoryErrors.invalidInput([{ field: "page_token", description: "is not a page token returned by ListEvents" }]);
    }
    throw e;
  }
}
