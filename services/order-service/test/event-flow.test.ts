import { randomUUID } from "node:crypto";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { consume, createInbox, type EventConsumer, type ReceivedEvent } from "@ecommerce/events/consumer.ts";
import { connectNats, type NatsConnection } from "@ecommerce/events/nats.ts";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { natsSuiteName, natsServerAvailable, startOwnNats, type OwnNats } from "@ecommerce/tools/nats.ts";
import { startService, type ServiceProcess } from "@ecommerce/tools/processes.ts";
import { createTestDatabase } from "@ecommerce/tools/testing.ts";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bearer, eventually, INVENTORY_AUTH_ENV, inventoryAdmin, ORDER_SERVICE_AUTH_ENV, STAFF_SCOPES } from "./system.ts";

/**
 * The whole system as a downstream consumer sees it: both services run as
 * processes and publish to a NATS JetStream of the test's own, and a
 * deduplicating consumer (the events package's, with an inbox) records
 * every event it applies. Under concurrent load, with the order service
 * killed mid-burst and the broker stopped and started, every state change
 * of every order and reservation must arrive exactly once in effect, and
 * the events of each order in the order of its changes.
 */

const ORDERS = 150;
const STOCK = 60;

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

describe.skipIf(!natsServerAvailable())(natsSuiteName("events from both services under load and failures"), () => {
  let nats: OwnNats;
  let inventoryDb: string;
  let ordersDb: string;
  let consumerDb: pg.Pool;
  let inventoryProcess: ServiceProcess;
  let orderProcess: ServiceProcess;
  let orderEnv: Record<string, string>;
  let sessions: Http2SessionManager;
  let inventory: Client<typeof InventoryService>;
  let connection: NatsConnection;
  const consumers: EventConsumer[] = [];

  beforeAll(async () => {
    nats = await startOwnNats();
    [inventoryDb, ordersDb] = await Promise.all([createTestDatabase("flow_inventory"), createTestDatabase("flow_orders")]);
    consumerDb = new pg.Pool({ connectionString: await createTestDatabase("flow_consumer"), max: 4 });
    consumerDb.on("error", () => {});
    await createInbox(consumerDb);
    await consumerDb.query(
      "create table applied (event_id uuid not null, type text not null, subject text not null, stream_sequence bigint not null)",
    );

    const events = { NATS_URL: nats.url, EVENTS_POLL_INTERVAL_MS: "200" };
    inventoryProcess = await startService("inventory-service", { ...INVENTORY_AUTH_ENV, ...events, DATABASE_URL: inventoryDb });
    orderEnv = {
      ...ORDER_SERVICE_AUTH_ENV,
      ...events,
      DATABASE_URL: ordersDb,
      INVENTORY_SERVICE_URL: inventoryProcess.url,
      RECONCILE_INTERVAL_MS: "100",
      PENDING_GRACE_MS: "1000",
      PENDING_GIVE_UP_MS: "30000",
      RATE_LIMIT_MAX: "0",
      LOG_REQUESTS: "false",
    };
    orderProcess = await startService("order-service", orderEnv);
    sessions = new Http2SessionManager(inventoryProcess.url);
    inventory = createClient(
      InventoryService,
      createGrpcTransport({ baseUrl: inventoryProcess.url, sessionManager: sessions, interceptors: [inventoryAdmin] }),
    );

    // A downstream system: one durable consumer per stream, each event
    // applied (a row in `applied`) in the transaction that records it in the inbox.
    connection = await connectNats({ url: nats.url, name: "event-flow test consumer" });
    for (const stream of ["ORDERS", "INVENTORY"] as const) {
      const consumer = consume({
        nats: connection,
        stream,
        durable: `flow-${stream.toLowerCase()}`,
        logger: quiet,
        inbox: { pool: consumerDb, consumer: `flow-${stream.toLowerCase()}` },
        redeliveryDelayMs: 100,
        handle: async (event: ReceivedEvent, tx) => {
          await tx.query("insert into applied (event_id, type, subject, stream_sequence) values ($1, $2, $3, $4)", [
            event.id,
            event.type,
            event.subject,
            event.streamSequence,
          ]);
        },
      });
      consumers.push(consumer);
    }
  });

  afterAll(async () => {
    await Promise.all(consumers.map((c) => c.stop()));
    await connection?.close();
    sessions?.abort();
    await Promise.all([orderProcess?.stop(), inventoryProcess?.stop()]);
    await consumerDb?.end();
    await nats?.close();
  });

  async function call(method: string, path: string, subject: string, body?: unknown): Promise<{ status: number; body: any }> {
    try {
      const res = await fetch(`${orderProcess.url}/api/v1${path}`, {
        method,
        headers: {
          authorization: await bearer(subject, subject === "staff" ? STAFF_SCOPES : []),
          ...(body === undefined ? {} : { "content-type": "application/json", "idempotency-key": randomUUID() }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    } catch {
      return { status: 0, body: undefined };
    }
  }

  /** Every order, as staff see them, page by page. */
  async function allOrders(): Promise<{ id: string; status: string }[]> {
    const orders: { id: string; status: string }[] = [];
    let cursor: string | undefined;
    do {
      const page = await call("GET", `/orders?limit=100${cursor ? `&cursor=${cursor}` : ""}`, "staff");
      expect(page.status).toBe(200);
      orders.push(...page.body.data);
      cursor = page.body.next_cursor ?? undefined;
    } while (cursor);
    return orders;
  }

  async function outboxCounts(url: string): Promise<{ total: number; unpublished: number }> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ total: number; unpublished: number }>(
        "select count(*)::int as total, (count(*) filter (where published_at is null))::int as unpublished from outbox",
      );
      return rows[0]!;
    } finally {
      await client.end();
    }
  }

  test("every change of every order and reservation arrives once, in order, through a crash and a broker outage", async () => {
    const { product } = await inventory.createProduct({
      sku: `FLOW-${randomUUID().slice(0, 8)}`,
      name: "Event flow product",
      priceMinor: 2500n,
      currency: "EUR",
      initialStock: STOCK,
      lowStockThreshold: 30,
    });
    const productId = product!.id;

    // A burst of orders; a fifth of the way in the order service is killed
    // (SIGKILL: its relay may die between publishing and marking) and
    // started again, and the broker goes away for two seconds.
    let answered = 0;
    let failures: Promise<void> | undefined;
    const placed = await Promise.all(
      Array.from({ length: ORDERS }, async (_, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 4));
        const answer = await call("POST", "/orders", `flow-${i}`, { items: [{ product_id: productId, quantity: 1 }] });
        if (++answered === ORDERS / 5) {
          failures = (async () => {
            await orderProcess.crash();
            await nats.stop();
            orderProcess = await startService("order-service", orderEnv, orderProcess.port);
            await new Promise((resolve) => setTimeout(resolve, 2000));
            await nats.start();
          })();
        }
        return answer;
      }),
    );
    await failures;
    expect(placed.every((answer) => [0, 201, 409, 503].includes(answer.status))).toBe(true);

    // Wait for the reconciler to settle what the crash left pending.
    const settled = await eventually(async () => {
      const orders = await allOrders();
      expect(orders.filter((o) => o.status === "pending")).toEqual([]);
      return orders;
    }, 30_000);
    const confirmed = settled.filter((o) => o.status === "confirmed");
    expect(confirmed.length).toBeGreaterThan(0);

    // Then, concurrently: cancel a third of the confirmed orders, fulfil a
    // third, and race a cancel against a fulfil on the rest (one wins each).
    const third = Math.floor(confirmed.length / 3);
    await Promise.all(
      confirmed.flatMap((order, i) => {
        if (i < third) return [call("POST", `/orders/${order.id}/cancel`, "staff")];
        if (i < 2 * third) return [call("POST", `/orders/${order.id}/fulfill`, "staff")];
        return [call("POST", `/orders/${order.id}/cancel`, "staff"), call("POST", `/orders/${order.id}/fulfill`, "staff")];
      }),
    );
    const final = await allOrders();
    const statusOf = new Map(final.map((o) => [o.id, o.status]));

    // Everything recorded is published, and the consumer applied exactly as many events as were recorded.
    const [orderOutbox, inventoryOutbox] = await eventually(async () => {
      const counts = await Promise.all([outboxCounts(ordersDb), outboxCounts(inventoryDb)]);
      expect(counts.map((c) => c.unpublished)).toEqual([0, 0]);
      const { rows } = await consumerDb.query<{ n: number }>("select count(*)::int as n from applied");
      expect(rows[0]!.n).toBe(counts[0]!.total + counts[1]!.total);
      return counts;
    }, 30_000);

    // Exactly once in effect: no event applied twice, whatever was published twice.
    const { rows: applied } = await consumerDb.query<{ event_id: string; type: string; subject: string; stream_sequence: string }>(
      "select event_id, type, subject, stream_sequence from applied order by stream_sequence",
    );
    expect(new Set(applied.map((a) => a.event_id)).size).toBe(applied.length);

    // Each order's events, in stream order, are its life: placed, then
    // confirmed or rejected, then cancelled or fulfilled.
    const orderEvents = new Map<string, string[]>();
    const stockEvents = new Map<string, string[]>();
    for (const event of applied) {
      const into = event.type.startsWith("orders.") ? orderEvents : stockEvents;
      if (event.type.startsWith("orders.") || event.type.startsWith("inventory.v1.stock.re") || event.type.endsWith(".committed")) {
        into.set(event.subject, [...(into.get(event.subject) ?? []), event.type.split(".").at(-1)!]);
      }
    }
    expect(orderEvents.size).toBe(final.length);
    for (const [id, status] of statusOf) {
      const life = { confirmed: ["placed", "confirmed"], rejected: ["placed", "rejected"], cancelled: ["placed", "confirmed", "cancelled"], fulfilled: ["placed", "confirmed", "fulfilled"] }[status];
      expect(orderEvents.get(id), `order ${id} (${status})`).toEqual(life);
      // Its reservation's events: reserved for every order that got stock, then released or committed.
      const stock = { confirmed: ["reserved"], rejected: undefined, cancelled: ["reserved", "released"], fulfilled: ["reserved", "committed"] }[status];
      expect(stockEvents.get(id), `reservation of ${id} (${status})`).toEqual(stock);
    }
    expect(orderOutbox.total + inventoryOutbox.total).toBe(applied.length);

    // Available stock fell below its threshold of 30 once (cancellations bring it back up, nothing takes it down again).
    expect(applied.filter((a) => a.type === "inventory.v1.stock.low" && a.subject === productId)).toHaveLength(1);
  }, 120_000);
});
