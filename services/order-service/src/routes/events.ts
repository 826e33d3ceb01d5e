import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { ORDERS_READ_ALL } from "@ecommerce/auth/scopes.ts";
import { listOrderEvents } from "../orders/events.ts";
import { readEventsAccess } from "../orders/policy.ts";
import { principalOf } from "../plugins/auth.ts";
import { AUTH_PROBLEMS, DEFAULT_EVENT_PAGE_SIZE, EventPage, json, ListEventsQuery, problems, secured } from "./schemas.ts";

const tags = ["events"];

/** The recorded order events: what the relay publishes to NATS, readable without a broker. */
export const eventRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    "/events",
    {
      schema: {
        tags,
        operationId: "listEvents",
        summary: "List the recorded order events, oldest first",
        description: `Staff only: needs \`${ORDERS_READ_ALL}\` (the events show every customer's orders). One CloudEvent per change of an order's status, in the order the changes committed; the events of one order are in the order of its changes. \`next_cursor\` is always set: pass it as \`cursor\` for the next page, and keep polling with the last one to get only newer events. A walk, even while orders are being placed, sees each event exactly once. Events are kept for EVENTS_RETENTION_HOURS.`,
        security: secured(ORDERS_READ_ALL),
        querystring: ListEventsQuery,
        response: {
          200: json("A page of events", EventPage),
          ...problems("validation_failed", "invalid_cursor", ...AUTH_PROBLEMS, "rate_limited", "internal_error", "database_unavailable"),
        },
      },
    },
    async (request) => {
      readEventsAccess(principalOf(request));
      const { cursor, type, limit } = request.query;
      return listOrderEvents(app.db, { cursor, type, limit: limit ?? DEFAULT_EVENT_PAGE_SIZE });
    },
  );
};
