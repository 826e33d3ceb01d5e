import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { cancelOrder, fulfilOrder } from "../orders/change-status.ts";
import type { OrderDeps } from "../orders/deps.ts";
import { placeOrder } from "../orders/place-order.ts";
import { getOrder, listOrders } from "../orders/queries.ts";
import { DEFAULT_PAGE_SIZE, IdParams, ListOrdersQuery, Order, OrderPage, PlaceOrderBody, problems } from "./schemas.ts";

const tags = ["orders"];

/** The orders resource: place, read, list, cancel, fulfil. */
export const orderRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const deps = (log: OrderDeps["log"]): OrderDeps => ({ db: app.db, inventory: app.inventory, log });

  app.post(
    "/orders",
    {
      schema: {
        tags,
        summary: "Place an order and reserve its stock",
        description:
          "201 when confirmed. 409 insufficient_stock and 422 unknown_product / order_rejected keep the order as rejected; 503 inventory_unavailable leaves it pending (see Retry-After).",
        body: PlaceOrderBody,
        response: { 201: Order, ...problems(400, 409, 413, 415, 422, 500, 503) },
      },
    },
    async (request, reply) => {
      const order = await placeOrder(deps(request.log), request.body);
      return reply.code(201).header("location", `${app.prefix}/orders/${order.id}`).send(order);
    },
  );

  app.get(
    "/orders",
    {
      schema: {
        tags,
        summary: "List orders, newest first",
        querystring: ListOrdersQuery,
        response: { 200: OrderPage, ...problems(400, 500) },
      },
    },
    async (request) => listOrders({ db: app.db }, { ...request.query, limit: request.query.limit ?? DEFAULT_PAGE_SIZE }),
  );

  app.get(
    "/orders/:id",
    {
      schema: {
        tags,
        summary: "Get an order",
        params: IdParams,
        response: { 200: Order, ...problems(400, 404, 500) },
      },
    },
    async (request) => getOrder({ db: app.db }, request.params.id),
  );

  app.post(
    "/orders/:id/cancel",
    {
      schema: {
        tags,
        summary: "Cancel a pending or confirmed order and release its stock",
        description: "Idempotent: cancelling a cancelled order returns it. 409 status_conflict from fulfilled or rejected.",
        params: IdParams,
        response: { 200: Order, ...problems(400, 404, 409, 500) },
      },
    },
    async (request) => cancelOrder(deps(request.log), request.params.id),
  );

  app.post(
    "/orders/:id/fulfill",
    {
      schema: {
        tags,
        summary: "Mark a confirmed order fulfilled and commit its stock",
        description: "Idempotent: fulfilling a fulfilled order returns it. 409 status_conflict from any other state.",
        params: IdParams,
        response: { 200: Order, ...problems(400, 404, 409, 500) },
      },
    },
    async (request) => fulfilOrder(deps(request.log), request.params.id),
  );
};
