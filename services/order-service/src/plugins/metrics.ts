import fp from "fastify-plugin";
import { collectDefaultMetrics, Histogram, Registry } from "prom-client";
import { STEP_NAMES } from "../orders/steps.ts";

declare module "fastify" {
  interface FastifyInstance {
    /** The service's Prometheus metrics, served at GET /metrics. */
    metrics: { registry: Registry; batchSize: Histogram<"step"> };
  }
}

/** Batch sizes by powers of two up to the largest batch (500). */
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 500];

/**
 * Prometheus metrics at GET /metrics: the process's own (CPU, memory, event
 * loop lag, GC) and `orders_batch_size{step}`, the size of every batch of
 * the placement pipeline. An operator endpoint, not part of the API: it is
 * left out of the OpenAPI document, the request log and the rate limit, so
 * scraping never competes with clients. Each app has its own registry, so
 * several apps in one process (tests) do not collide.
 */
export const metricsPlugin = fp(
  async (app) => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const batchSize = new Histogram({
      name: "orders_batch_size",
      help: "Orders per batch of each step of the order saga (store, reserve, settle, transition, acknowledge).",
      labelNames: ["step"] as const,
      buckets: BATCH_SIZE_BUCKETS,
      registers: [registry],
    });
    // Every step's series exists from the start, at zero, for scrapers to diff against.
    for (const step of STEP_NAMES) batchSize.zero({ step });
    app.decorate("metrics", { registry, batchSize });

    app.get("/metrics", { schema: { hide: true }, config: { rateLimit: false }, logLevel: "warn" }, async (_request, reply) =>
      reply.type(registry.contentType).send(await registry.metrics()),
    );
  },
  { name: "metrics" },
);
