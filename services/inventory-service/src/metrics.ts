import http from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { BATCH_STEPS, type BatchStep } from "./stock/coalescing.ts";

/** The service's Prometheus metrics: batch sizes per step and the process's own. */
export interface Metrics {
  registry: Registry;
  /** Records the size of one batch of `step`. */
  observeBatch(step: BatchStep, size: number): void;
  /** Reports the outbox's publishing lag and backlog at every scrape, from `status`. */
  watchOutbox(status: () => Promise<{ unpublished: number; lagSeconds: number | null }>): void;
}

/**
 * A registry of its own (so several servers in one process, as in tests,
 * keep their figures apart) with prom-client's default process metrics and
 * `inventory_batch_size{step}`, the histogram of how many calls each batch
 * served: 1 at low load, growing with it.
 */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const batchSize = new Histogram({
    name: "inventory_batch_size",
    help: "Calls served by one batch (one transaction), per step",
    labelNames: ["step"] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 500],
    registers: [registry],
  });
  // Every step's series exists from the start, at zero, for scrapers to diff against.
  for (const step of BATCH_STEPS) batchSize.zero({ step });
  return {
    registry,
    observeBatch: (step, size) => batchSize.observe({ step }, size),
    watchOutbox: (status) => {
      // Read once per scrape for both gauges; a database that does not answer leaves them out of that scrape.
      let reading: Promise<{ unpublished: number; lagSeconds: number | null } | undefined> | undefined;
      const read = () =>
        (reading ??= status()
          .catch(() => undefined)
          .finally(() => setImmediate(() => (reading = undefined))));
      new Gauge({
        name: "inventory_events_outbox_lag_seconds",
        help: "Age of the oldest stock event not yet published to NATS (0 when none is waiting)",
        registers: [registry],
        async collect() {
          const s = await read();
          if (s) this.set(s.lagSeconds ?? 0);
        },
      });
      new Gauge({
        name: "inventory_events_outbox_unpublished",
        help: "Stock events recorded and not yet published to NATS (counted up to 10,000)",
        registers: [registry],
        async collect() {
          const s = await read();
          if (s) this.set(s.unpublished);
        },
      });
    },
  };
}

/** A running metrics endpoint. */
export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` in the Prometheus text format over plain HTTP/1.1:
 * the gRPC port speaks h2c only, which scrapers cannot reach.
 */
export function startMetricsServer(metrics: Metrics, port: number, host: string): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (req.method !== "GET" || req.url?.split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(err)}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise((done) => {
          server.close(() => done());
          server.closeAllConnections();
        }),
      });
    });
  });
}
