import { Code, ConnectError } from "@connectrpc/connect";
import { HealthCheckResponse_ServingStatus } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import type { FastifyInstance } from "fastify";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { sql } from "kysely";
import type { EventsConfig } from "@ecommerce/events/config.ts";
import { AppError } from "../errors.ts";
import { eventsReadiness } from "../orders/events.ts";
import { Health, json, problems, Readiness } from "./schemas.ts";

const tags = ["health"];
// Probes are never rate limited: an orchestrator must always get an answer.
const config = { rateLimit: false };

/** Liveness and readiness probes (Kubernetes httpGet probes). */
export const healthRoutes: FastifyPluginAsyncTypebox<{ events: EventsConfig }> = async (app, { events }) => {
  app.get(
    "/healthz",
    {
      config,
      schema: {
        tags,
        operationId: "getLiveness",
        summary: "Liveness: the process serves requests",
        response: { 200: json("Alive", Health) },
      },
    },
    async () => ({ status: "ok" }),
  );

  app.get(
    "/readyz",
    {
      config,
      schema: {
        tags,
        operationId: "getReadiness",
        summary: "Readiness: the orders database and inventory answer",
        description:
          "Ready when the orders database and inventory answer. `events` tells whether order events are published (NATS_URL) and how far publishing is behind; it never makes the service unready.",
        response: { 200: json("Ready to serve", Readiness), ...problems("internal_error", "not_ready") },
      },
    },
    async () => {
      const [database, inventory, outbox] = await Promise.allSettled([
        sql`SELECT 1`.execute(app.db),
        inventoryServing(app),
        eventsReadiness(app.db, events),
      ]);
      const down: string[] = [];
      if (database.status === "rejected") down.push("the orders database does not answer");
      if (inventory.status === "rejected") down.push("inventory does not answer");
      else if (!inventory.value) down.push("inventory is not serving");
      if (down.length > 0) throw new AppError("not_ready", `Not ready: ${down.join("; ")}.`);
      return { status: "ready" as const, events: outbox.status === "fulfilled" ? outbox.value : { publishing: events.natsUrl !== undefined } };
    },
  );
};

/**
 * Asks inventory's grpc.health.v1 service; a server without it is asked for
 * one product instead, which proves it answers.
 */
async function inventoryServing(app: FastifyInstance): Promise<boolean> {
  try {
    const { status } = await app.inventoryHealth.check({ service: "" });
    return status === HealthCheckResponse_ServingStatus.SERVING;
  } catch (error) {
    if (ConnectError.from(error).code !== Code.Unimplemented) throw error;
    await app.inventory.listProducts({ pageSize: 1 });
    return true;
  }
}
