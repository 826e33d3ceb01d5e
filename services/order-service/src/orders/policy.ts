import { ORDERS_CANCEL_ANY, ORDERS_FULFIL, ORDERS_READ_ALL, hasScopes, requireScopes } from "@ecommerce/auth/scopes.ts";
import type { Principal } from "@ecommerce/auth/verifier.ts";
import { forbidden } from "../errors.ts";

/**
 * Who may do what with orders: the one place it is decided. A customer is
 * the token's subject and acts on their own orders only; staff act on every
 * customer's orders by scope. The use cases get the answer as an
 * {@link OrderAccess} and never look at the caller themselves.
 *
 * Another customer's order is answered as if it did not exist (404), so
 * order ids reveal nothing. A request that names another customer outright
 * (a `user_id` in the body or the filter) is refused (403): that says
 * nothing the caller did not already know.
 */

/** The orders a request may reach: `owner`'s only, or every order when `owner` is undefined. */
export interface OrderAccess {
  owner: string | undefined;
}

const own = (principal: Principal, anyScope: typeof ORDERS_READ_ALL | typeof ORDERS_CANCEL_ANY): OrderAccess => ({
  owner: hasScopes(principal, anyScope) ? undefined : principal.subject,
});

/** Reading one order: the caller's own, or any with `orders:read_all`. */
export function readAccess(principal: Principal): OrderAccess {
  return own(principal, ORDERS_READ_ALL);
}

/** Cancelling: the caller's own orders, or any with `orders:cancel_any`. */
export function cancelAccess(principal: Principal): OrderAccess {
  return own(principal, ORDERS_CANCEL_ANY);
}

/** Fulfilling is staff work: `orders:fulfil` is required (403 without it), and reaches every order. */
export function fulfilAccess(principal: Principal): OrderAccess {
  requireScopes(principal, ORDERS_FULFIL);
  return { owner: undefined };
}

/**
 * Reading the recorded order events is staff work: they show every
 * customer's orders, so `orders:read_all` is required (403 without it).
 */
export function readEventsAccess(principal: Principal): void {
  requireScopes(principal, ORDERS_READ_ALL);
}

/**
 * The customer an order is placed for: always the caller. A `user_id` in
 * the body may repeat the caller's subject; naming anyone else is 403,
 * staff included (nobody places orders for someone else).
 */
export function placingFor(principal: Principal, userId: string | undefined): string {
  if (userId !== undefined && userId !== principal.subject) {
    throw forbidden("Orders are placed for the caller: user_id must be absent or equal to the token's subject.");
  }
  return principal.subject;
}

/**
 * The `user_id` filter a listing runs with: the caller's own for a customer
 * (naming another customer is 403), the requested one (or none: every
 * order) with `orders:read_all`.
 */
export function listingFor(principal: Principal, userId: string | undefined): string | undefined {
  const { owner } = readAccess(principal);
  if (owner === undefined) return userId;
  if (userId !== undefined && userId !== owner) {
    throw forbidden("Customers list their own orders only: the user_id filter must be absent or equal to the token's subject.");
  }
  return owner;
}
