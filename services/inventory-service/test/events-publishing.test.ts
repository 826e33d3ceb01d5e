import { consume, type EventConsumer, type ReceivedEvent } from "@ecommerce/events/consumer.ts";
import { readEventsConfig } from "@ecommerce/events/config.ts";
import { connectNats, type NatsConnection } from "@ecommerce/events/nats.ts";
import { freePort } from "@ecommerce/tools/postgres.ts";
import { natsServerAvailable, natsSuiteName, startOwnNats, type OwnNats } from "@ecommerce/tools/nats.ts";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startHarness, type Harness } from "./inventory-harness.ts";

/**
 * The server as deployed with NATS_URL: its relay publishes every stock
 * event to the INVENTORY stream, and /metrics shows how far publishing is
 * behind, which grows while the broker is away and falls back to zero once
 * it returns.
 */

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

async function gauges(url: string): Promise<{ lag: number; unpublished: number }> {
  const text = await (await fetch(url)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return { lag: value("inventory_events_outbox_lag_seconds"), unpublished: value("inventory_events_outbox_unpublished") };
}

async function until<T>(check: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe.skipIf(!natsServerAvailable())(natsSuiteName("inventory publishing its stock events"), () => {
  let nats: OwnNats;
  let h: Harness;
  let connection: NatsConnection;
  let tail: EventConsumer;
  const received: ReceivedEvent[] = [];

  beforeAll(async () => {
    nats = await startOwnNats();
    const events = readEventsConfig({ NATS_URL: nats.url, EVENTS_POLL_INTERVAL_MS: "200" }, (_n, fallback) => fallback, []);
    h = await startHarness({ events: { ...events, pollIntervalMs: 200 }, metricsPort: await freePort() });
    connection = await connectNats({ url: nats.url, name: "inventory publishing test" });
    tail = consume({ nats: connection, stream: "INVENTORY", logger: quiet, handle: (event) => void received.push(event) });
  });

  afterAll(async () => {
    await tail?.stop();
    await connection?.close();
    await h?.close();
    await nats?.close();
  });

  test("every stock change reaches the INVENTORY stream; /metrics shows the lag while NATS is away", async () => {
    expect(h.server.metricsUrl).toBeDefined();
    await tail.ready;
    const product = await h.product({ initialStock: 5, lowStockThreshold: 3 });
    const orderId = crypto.randomUUID();
    await h.client.reserveStock({ orderId, lines: [{ productId: product.id, quantity: 3 }] });

    const published = await until(async () => {
      const mine = received.filter((e) => e.subject === product.id || e.subject === orderId).map((e) => e.type);
      expect(mine).toEqual(["inventory.v1.stock.adjusted", "inventory.v1.stock.reserved", "inventory.v1.stock.low"]);
      return received.find((e) => e.type === "inventory.v1.stock.reserved")!;
    });
    expect(published.source).toBe("/inventory-service");
    expect(published.type === "inventory.v1.stock.reserved" && published.data.lines.map((l) => [l.productId, l.quantity])).toEqual([
      [product.id, 3],
    ]);
    expect(await until(async () => {
      const g = await gauges(h.server.metricsUrl!);
      expect(g).toEqual({ lag: 0, unpublished: 0 });
      return g;
    })).toEqual({ lag: 0, unpublished: 0 });

    // The broker goes away: the change is made and recorded, and waits.
    await nats.stop();
    await h.client.releaseStock({ orderId, reason: "test" });
    const waiting = await until(async () => {
      const g = await gauges(h.server.metricsUrl!);
      expect(g.unpublished).toBe(1);
      expect(g.lag).toBeGreaterThan(1);
      return g;
    });
    expect(waiting.unpublished).toBe(1);

    // Back: it is published, and the lag is gone.
    await nats.start();
    await until(async () => {
      expect(received.filter((e) => e.subject === orderId).map((e) => e.type)).toEqual([
        "inventory.v1.stock.reserved",
        "inventory.v1.stock.released",
      ]);
      expect(await gauges(h.server.metricsUrl!)).toEqual({ lag: 0, unpublished: 0 });
    }, 30_000);
  }, 60_000);
});
