import fp from "fastify-plugin";
import type { BatchingConfig } from "../config.ts";
import { batchedSteps, directSteps, type BatchedSteps } from "../orders/steps.ts";

declare module "fastify" {
  interface FastifyInstance {
    /** The steps of placing an order, batched across concurrent requests. */
    orderSteps: BatchedSteps;
  }
}

/**
 * Decorates the app with the batched placement pipeline over its database
 * pool and inventory client, each batch's size recorded in the metrics. On
 * close (once the server takes no more requests), batches under way finish
 * before the pool and the inventory session close: plugins close in reverse
 * order of registration.
 */
export const orderStepsPlugin = fp<BatchingConfig>(
  async (app, bounds) => {
    const steps = batchedSteps(directSteps(app.db, app.inventory), bounds, (step, size) => app.metrics.batchSize.observe({ step }, size));
    app.decorate("orderSteps", steps);
    app.addHook("onClose", () => steps.drained());
  },
  { name: "order-steps", dependencies: ["db", "inventory", "metrics"] },
);
