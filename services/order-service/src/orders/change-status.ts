import { orderNotFound, statusConflict } from "../errors.ts";
import type { OrderDeps } from "./deps.ts";
import type { Order } from "./order.ts";
import { applyTransition, findOrder } from "./repository.ts";
import { CANCEL, FULFIL, type Transition } from "./status.ts";
import { syncOrderStock } from "./stock-sync.ts";

/**
 * Cancels a pending or confirmed order and gives its stock back.
 * Cancelling a cancelled order returns it unchanged.
 */
export function cancelOrder(deps: OrderDeps, id: string): Promise<Order> {
  return changeStatus(deps, id, CANCEL, "cancelled");
}

/**
 * Marks a confirmed order fulfilled and turns its reserved stock into sold
 * stock. Fulfilling a fulfilled order returns it unchanged.
 */
export function fulfilOrder(deps: OrderDeps, id: string): Promise<Order> {
  return changeStatus(deps, id, FULFIL, "fulfilled");
}

/**
 * The database decides first: the guarded UPDATE settles any race, and
 * records that the new state owes inventory its stock action. The call to
 * inventory follows; if the process dies or inventory is down in between,
 * the stock sync pass re-sends the idempotent call (see stock-sync.ts).
 */
async function changeStatus(deps: OrderDeps, id: string, transition: Transition, action: string): Promise<Order> {
  const changed = await applyTransition(deps.db, id, transition);
  if (changed) {
    await syncOrderStock(deps, changed);
    return changed;
  }
  const current = await findOrder(deps.db, id);
  if (!current) throw orderNotFound(id);
  if (current.status === transition.to) return current;
  throw statusConflict(id, current.status, action);
}
