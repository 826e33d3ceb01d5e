import { createContextKey, type ContextValues, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { AuthError } from "@ecommerce/auth/errors.ts";
import { INVENTORY_ADMIN, INVENTORY_READ, INVENTORY_RESERVE, type Scope } from "@ecommerce/auth/scopes.ts";
import type { Principal, TokenVerifier } from "@ecommerce/auth/verifier.ts";
import { Health } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import { ServerReflection as ReflectionV1 } from "@ecommerce/gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ReflectionV1alpha } from "@ecommerce/gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";

/**
 * The scope each InventoryService RPC needs, by method name: the one place
 * access is decided. A method without an entry is refused to everyone
 * (PERMISSION_DENIED), so a new RPC is closed until it is listed here.
 */
export const RPC_SCOPES: Readonly<Record<string, Scope>> = Object.freeze({
  CheckStock: INVENTORY_READ,
  GetProduct: INVENTORY_READ,
  ListProducts: INVENTORY_READ,
  ListEvents: INVENTORY_READ,
  ReserveStock: INVENTORY_RESERVE,
  ReserveOrders: INVENTORY_RESERVE,
  ReleaseStock: INVENTORY_RESERVE,
  CommitStock: INVENTORY_RESERVE,
  ConfirmReservations: INVENTORY_RESERVE,
  CreateProduct: INVENTORY_ADMIN,
  AdjustStock: INVENTORY_ADMIN,
});

/**
 * Scopes that include another: catalogue staff read the products and stock
 * they manage, so `inventory:admin` grants what `inventory:read` does.
 * `inventory:reserve` includes nothing: the order service holds read as
 * well when it reads, and a reading tool can never reserve.
 */
const INCLUDED_IN: Partial<Record<Scope, readonly Scope[]>> = { [INVENTORY_READ]: [INVENTORY_ADMIN] };

/** The verified caller of the call; undefined on calls that need no token (Health, public reflection). */
const principalKey = createContextKey<Principal | undefined>(undefined, { description: "authenticated caller" });

/** The caller a call was authenticated as, if it was. */
export function callerOf(values: ContextValues): Principal | undefined {
  return values.get(principalKey);
}

/**
 * The caller of an InventoryService call, which the authentication
 * interceptor has always set; refuses the call if it somehow has not.
 */
export function principalOf(call: HandlerContext): Principal {
  const principal = callerOf(call.values);
  if (principal === undefined) throw new AuthError("missing_token", "a bearer token is required");
  return principal;
}

/** Who a service caller is for the ledger: its OAuth client when the token names one, else its subject. */
export function callerIdentity(principal: Principal): string {
  return principal.clientId ?? principal.subject;
}

export interface AuthenticationOptions {
  verifier: TokenVerifier;
  /** Whether server reflection answers without a token; otherwise it needs `inventory:read`. */
  reflectionPublic: boolean;
}

const REFLECTION = new Set([ReflectionV1.typeName, ReflectionV1alpha.typeName]);

/**
 * Interceptor that authenticates every call but grpc.health.v1.Health (and
 * server reflection when it is public) with the bearer token of its
 * `authorization` metadata, checks the scope the method needs, and puts
 * the caller in the call's context values ({@link principalOf}). Refusals
 * are thrown as AuthError (UNAUTHENTICATED, or PERMISSION_DENIED for a
 * missing scope) and KeySetUnavailableError (UNAVAILABLE), which the error
 * interceptor maps; no message contains the token.
 */
export function authentication(options: AuthenticationOptions): Interceptor {
  const { verifier, reflectionPublic } = options;
  return (next) => async (req) => {
    const service = req.service.typeName;
    if (service === Health.typeName || (reflectionPublic && REFLECTION.has(service))) return next(req);
    const principal = await verifier.verify(req.header.get("authorization") ?? undefined);
    const scope =
      service === InventoryService.typeName ? RPC_SCOPES[req.method.name] : REFLECTION.has(service) ? INVENTORY_READ : undefined;
    if (scope === undefined) {
      throw new AuthError("insufficient_scope", `no scope grants ${service}/${req.method.name}`, { requiredScopes: [] });
    }
    const holders = [scope, ...(INCLUDED_IN[scope] ?? [])];
    if (!holders.some((s) => principal.scopes.has(s))) {
      const alternatives = holders.length > 1 ? ` (or ${holders.slice(1).join(" or ")}, which includes it)` : "";
      throw new AuthError("insufficient_scope", `${req.method.name} needs the scope ${scope}${alternatives}`, { requiredScopes: [scope] });
    }
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
