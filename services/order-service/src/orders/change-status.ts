import { orderNotFound, statusConflict } from "../errors.ts";
import type { OrderDeps } from "./deps.ts";
import { begin, finish, holding, respond, type Answer, type IdempotentRequest } from "./idempotency.ts";
import type { Order } from "./order.ts";
import type { OrderAccess } from "./policy.ts";
import { findOrder } from "./repository.ts";
import { CANCEL, FULFIL, type Transition } from "./status.ts";
import { syncOrderStock } from "./stock-sync.ts";
import { valueOf } from "./steps.ts";

/**
 * Cancels a pending or confirmed order and gives its stock back: 200 with
 * the order. Cancelling a cancelled order answers it unchanged; from any
 * other state 409 with the current status. Under an Idempotency-Key the
 * first answer is replayed.
 */
export function cancelOrder(deps: OrderDeps, id: string, access: OrderAccess, request?: IdempotentRequest): Promise<Answer> {
  return changeStatus(deps, id, access, CANCEL, "cancelled", request);
}

/**
 * Marks a confirmed order fulfilled and turns its reserved stock into sold
 * stock: 200 with the order. Fulfilling a fulfilled order answers it
 * unchanged; from any other state 409 with the current status. Under an
 * Idempotency-Key the first answer is replayed.
 */
export function fulfilOrder(deps: OrderDeps, id: string, access: OrderAccess, request?: IdempotentRequest): Promise<Answer> {
  return changeStatus(deps, id, access, FULFIL, "fulfilled", request);
}

async function changeStatus(
  deps: OrderDeps,
  id: string,
  access: OrderAccess,
  transition: Transition,
  action: string,
  request: IdempotentRequest | undefined,
): Promise<Answer> {
  const run = () => respond(200, () => transit(deps, id, access, transition, action));
  if (!request) return { response: await run(), replayed: false };
  const begun = await begin(deps.db, request, id, deps.leaseMs);
  if (begun.kind === "replay") return { response: begun.response, replayed: true };
  return finish(deps.db, request, await holding(deps.db, request, run));
}

/**
 * The database decides first: the guarded UPDATE settles any race (of a
 * cancel and a fulfil, exactly one wins), and records that the new state
 * owes inventory its stock action. The call to inventory follows; if the
 * process dies or inventory is down in between, the background stock sync
 * re-sends the idempotent call (see stock-sync.ts). Running it again for
 * the same request answers the same: the order is then already in the
 * target state. An order outside the caller's access is not found, and left
 * alone: an order never changes hands, so checking first is race-free.
 */
async function transit(deps: OrderDeps, id: string, access: OrderAccess, transition: Transition, action: string): Promise<Order> {
  if (access.owner !== undefined && !(await findOrder(deps.db, id, access.owner))) throw orderNotFound(id);
  // Shared with the state changes asked at the same moment (one UPDATE), each with its own guard.
  const [result] = await deps.steps.transition([{ id, transition }]);
  const changed = valueOf(result!);
  if (changed) {
    await syncOrderStock(deps, changed);
    return changed;
  }
  const current = await findOrder(deps.db, id);
  if (!current) throw orderNotFound(id);
  if (current.status === transition.to) return current;
  throw statusConflict(id, current.status, action);
}
