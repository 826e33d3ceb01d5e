import { AuthError } from "./errors.ts";
import type { Principal } from "./verifier.ts";

/**
 * The OAuth scopes of the system, the one place they are named. A customer
 * needs no scope: a customer is the token's subject and acts on their own
 * orders only. Scopes grant what goes beyond that, to staff and to services.
 */

/** Staff: list and read every customer's orders, not only the subject's own. */
export const ORDERS_READ_ALL = "orders:read_all";
/** Staff: mark paid orders fulfilled (which commits their reserved stock). */
export const ORDERS_FULFIL = "orders:fulfil";
/** Staff: cancel any customer's order, not only the subject's own. */
export const ORDERS_CANCEL_ANY = "orders:cancel_any";
/** Read stock levels and products from the inventory service. */
export const INVENTORY_READ = "inventory:read";
/**
 * The order service's own identity: reserve, release, commit and confirm
 * stock for orders. Held by a client, never by a person.
 */
export const INVENTORY_RESERVE = "inventory:reserve";
/** Catalogue and stock management: create and change products, set and adjust stock. */
export const INVENTORY_ADMIN = "inventory:admin";

export type Scope =
  | typeof ORDERS_READ_ALL
  | typeof ORDERS_FULFIL
  | typeof ORDERS_CANCEL_ANY
  | typeof INVENTORY_READ
  | typeof INVENTORY_RESERVE
  | typeof INVENTORY_ADMIN;

/** Every scope, for an issuer's configuration and for checks that a name is known. */
export const ALL_SCOPES: readonly Scope[] = [ORDERS_READ_ALL, ORDERS_FULFIL, ORDERS_CANCEL_ANY, INVENTORY_READ, INVENTORY_RESERVE, INVENTORY_ADMIN];

/** Whether the principal holds every one of the scopes. */
export function hasScopes(principal: Principal, ...scopes: Scope[]): boolean {
  return scopes.every((scope) => principal.scopes.has(scope));
}

/**
 * Throws `insufficient_scope` unless the principal holds every one of the
 * scopes; the error names them all, for the `WWW-Authenticate` challenge.
 */
export function requireScopes(principal: Principal, ...scopes: Scope[]): void {
  const missing = scopes.filter((scope) => !principal.scopes.has(scope));
  if (missing.length > 0) {
    throw new AuthError("insufficient_scope", `this operation needs the scope ${missing.join(" and ")}`, { requiredScopes: scopes });
  }
}
