import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyReply } from "fastify";
import { cancelOrder, fulfilOrder } from "../orders/change-status.ts";
import { leaseFor, type OrderDeps } from "../orders/deps.ts";
import {
  IDEMPOTENT_ENDPOINTS,
  idempotentRequest,
  type Answer,
  type IdempotentEndpoint,
  type IdempotentRequest,
} from "../orders/idempotency.ts";
import type { Order as OrderView } from "../orders/order.ts";
import { placeOrder } from "../orders/place-order.ts";
import { cancelAccess, fulfilAccess, listingFor, placingFor, readAccess } from "../orders/policy.ts";
import { getOrder, listOrders } from "../orders/queries.ts";
import { principalOf } from "../plugins/auth.ts";
import { sendProblem, type ProblemDocument } from "../plugins/problems.ts";
import { ORDERS_CANCEL_ANY, ORDERS_FULFIL, ORDERS_READ_ALL } from "@ecommerce/auth/scopes.ts";
import {
  AUTH_PROBLEMS,
  DEFAULT_PAGE_SIZE,
  IdempotencyHeaders,
  json,
  ListOrdersQuery,
  Order,
  OrderIdParams,
  OrderPage,
  PlaceOrderBody,
  problems,
  REPLAYED_HEADER,
  secured,
} from "./schemas.ts";

const tags = ["orders"];

/** The request under the caller's Idempotency-Key, or undefined when it has none. */
function keyed(
  endpoint: IdempotentEndpoint,
  subject: string,
  request: { headers: { "idempotency-key"?: string }; params?: unknown; body?: unknown },
): IdempotentRequest | undefined {
  const key = request.headers["idempotency-key"];
  return key === undefined ? undefined : idempotentRequest(subject, endpoint, key, request);
}

/** The orders resource: place, read, list, cancel, fulfil. */
export const orderRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const deps = (log: OrderDeps["log"]): OrderDeps => ({
    db: app.db,
    inventory: app.inventory,
    steps: app.orderSteps,
    log,
    leaseMs: leaseFor(app.inventoryTimeoutMs),
  });

  /**
   * Sends a state-changing endpoint's answer: the order, or a problem
   * document for an error status; a replay of a stored response says so.
   */
  const send = (reply: FastifyReply, { response, replayed }: Answer) => {
    if (replayed) reply.header("idempotent-replayed", "true");
    if (response.status >= 400) return sendProblem(reply, response.body as ProblemDocument);
    const order = response.body as OrderView;
    if (response.status === 201) reply.header("location", `${app.prefix}/orders/${order.id}`);
    return reply.code(response.status).send(order);
  };

  app.post(
    "/orders",
    {
      schema: {
        tags,
        operationId: "placeOrder",
        summary: "Place an order and reserve its stock",
        description:
          "Stores the order for the caller (the token's subject), reserves all its lines in inventory (all or none) and confirms it with inventory's prices. 201 when confirmed. 409 insufficient_stock and 422 unknown_product / order_rejected keep the order as rejected; 503 inventory_unavailable leaves it pending, to be completed in the background. A `user_id` naming someone else is 403.",
        security: secured(),
        headers: IdempotencyHeaders,
        body: PlaceOrderBody,
        response: {
          201: json("The order, confirmed", Order, {
            location: { type: "string", description: "Path of the new order" },
            ...REPLAYED_HEADER,
          }),
          ...problems(
            "validation_failed",
            "malformed_json",
            ...AUTH_PROBLEMS,
            "insufficient_stock",
            "body_too_large",
            "unsupported_media_type",
            "duplicate_product",
            "unknown_product",
            "order_rejected",
            "idempotency_key_in_flight",
            "idempotency_key_reused",
            "rate_limited",
            "internal_error",
            "database_unavailable",
            "inventory_unavailable",
            "overloaded",
          ),
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      // The key identifies the order as placed (for the subject), whether or not the body repeated user_id.
      const body = { ...request.body, user_id: placingFor(principal, request.body.user_id) };
      const key = keyed(IDEMPOTENT_ENDPOINTS.placeOrder, principal.subject, { headers: request.headers, body });
      return send(reply, await placeOrder(deps(request.log), body, key));
    },
  );

  app.get(
    "/orders",
    {
      schema: {
        tags,
        operationId: "listOrders",
        summary: "List orders, newest first",
        description:
          "A customer's own orders; every customer's with `orders:read_all`. Keyset pagination: pass `next_cursor` as `cursor` for the next page until it is null. Orders created during a walk never shift the pages, so no order is seen twice or skipped. Filters combine.",
        security: secured(),
        querystring: ListOrdersQuery,
        response: {
          200: json("A page of orders", OrderPage),
          ...problems("validation_failed", "invalid_cursor", ...AUTH_PROBLEMS, "rate_limited", "internal_error", "database_unavailable"),
        },
      },
    },
    async (request) => {
      const user_id = listingFor(principalOf(request), request.query.user_id);
      return listOrders({ db: app.db }, { ...request.query, user_id, limit: request.query.limit ?? DEFAULT_PAGE_SIZE });
    },
  );

  app.get(
    "/orders/:id",
    {
      schema: {
        tags,
        operationId: "getOrder",
        summary: "Get an order",
        description: `A customer's own order; any order with \`${ORDERS_READ_ALL}\`. Another customer's order is 404, as if it did not exist.`,
        security: secured(),
        params: OrderIdParams,
        response: {
          200: json("The order", Order),
          ...problems("validation_failed", ...AUTH_PROBLEMS, "order_not_found", "rate_limited", "internal_error", "database_unavailable"),
        },
      },
    },
    async (request) => getOrder({ db: app.db }, request.params.id, readAccess(principalOf(request))),
  );

  // Cancel and fulfil are the same shape: a guarded state change of one
  // order, idempotent, with its stock action owed to inventory.
  const stateChanges = [
    {
      path: "/orders/:id/cancel",
      operationId: "cancelOrder",
      summary: "Cancel a pending or confirmed order and release its stock",
      description: `A customer cancels their own orders; any order with \`${ORDERS_CANCEL_ANY}\` (another customer's is 404 otherwise). Idempotent: cancelling a cancelled order returns it. 409 status_conflict from fulfilled or rejected. Takes no body.`,
      done: "cancelled",
      security: secured(),
      access: cancelAccess,
      change: cancelOrder,
      endpoint: IDEMPOTENT_ENDPOINTS.cancelOrder,
    },
    {
      path: "/orders/:id/fulfill",
      operationId: "fulfillOrder",
      summary: "Mark a confirmed order fulfilled and commit its stock",
      description: `Staff only: needs \`${ORDERS_FULFIL}\` (403 without it, for the order's own customer too). Idempotent: fulfilling a fulfilled order returns it. 409 status_conflict from any other state. Takes no body.`,
      done: "fulfilled",
      security: secured(ORDERS_FULFIL),
      access: fulfilAccess,
      change: fulfilOrder,
      endpoint: IDEMPOTENT_ENDPOINTS.fulfilOrder,
    },
  ] as const;
  for (const { path, operationId, summary, description, done, security, access, change, endpoint } of stateChanges) {
    app.post(
      path,
      {
        schema: {
          tags,
          operationId,
          summary,
          description,
          security,
          headers: IdempotencyHeaders,
          params: OrderIdParams,
          response: {
            200: json(`The order, ${done}`, Order, REPLAYED_HEADER),
            ...problems(
              "validation_failed",
              ...AUTH_PROBLEMS,
              "order_not_found",
              "status_conflict",
              "idempotency_key_in_flight",
              "idempotency_key_reused",
              "unsupported_media_type",
              "rate_limited",
              "internal_error",
              "database_unavailable",
            ),
          },
        },
      },
      async (request, reply) => {
        const principal = principalOf(request);
        const allowed = access(principal);
        return send(reply, await change(deps(request.log), request.params.id, allowed, keyed(endpoint, principal.subject, request)));
      },
    );
  }
};
