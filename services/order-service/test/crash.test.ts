import { randomUUID } from "node:crypto";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { checkConsistency, type ConsistencyReport } from "@ecommerce/tools/check-consistency.ts";
import { createTestDatabase } from "@ecommerce/tools/testing.ts";
import type { Kysely } from "kysely";
import { afterEach, beforeEach, expect, test } from "vitest";
import { connectDatabase } from "../src/db/connect.ts";
import type { Database } from "../src/db/database.ts";
import { startService, type ServiceProcess } from "@ecommerce/tools/processes.ts";
import { bearer, eventually, INVENTORY_AUTH_ENV, inventoryAdmin, ORDER_SERVICE_AUTH_ENV } from "./system.ts";

/**
 * Crashes of real processes: each service runs as `node src/main.ts` and is
 * killed with SIGKILL in the middle of a burst of orders, then started again
 * on the same port. Afterwards every order must be settled, inventory must
 * hold exactly what the confirmed orders hold, and the consistency check
 * must find nothing.
 */

const ORDERS = 200;
/** Short reconciler settings, so that convergence takes seconds. */
const ORDER_ENV = {
  ...ORDER_SERVICE_AUTH_ENV,
  RECONCILE_INTERVAL_MS: "100",
  PENDING_GRACE_MS: "1000",
  PENDING_GIVE_UP_MS: "30000",
  INVENTORY_TIMEOUT_MS: "1000",
  LOG_REQUESTS: "false",
  RATE_LIMIT_MAX: "0",
};

let inventoryDb: string;
let ordersDb: string;
let inventoryProcess: ServiceProcess | undefined;
let orderProcess: ServiceProcess | undefined;
let sessions: Http2SessionManager;
let inventory: Client<typeof InventoryService>;
let orders: Kysely<Database>;

beforeEach(async (context) => {
  const label = context.task.name.includes("inventory") ? "crashinv" : "crashord";
  [inventoryDb, ordersDb] = await Promise.all([createTestDatabase(`${label}_inventory`), createTestDatabase(`${label}_orders`)]);
  inventoryProcess = await startService("inventory-service", { ...INVENTORY_AUTH_ENV, DATABASE_URL: inventoryDb });
  orderProcess = await startService("order-service", {
    ...ORDER_ENV,
    DATABASE_URL: ordersDb,
    INVENTORY_SERVICE_URL: inventoryProcess.url,
  });
  sessions = new Http2SessionManager(inventoryProcess.url);
  inventory = createClient(InventoryService, createGrpcTransport({ baseUrl: inventoryProcess.url, sessionManager: sessions, interceptors: [inventoryAdmin] }));
  orders = connectDatabase(ordersDb, 2);
});

afterEach(async () => {
  sessions?.abort();
  await orders?.destroy();
  await Promise.all([orderProcess?.stop(), inventoryProcess?.stop()]);
});

interface Outcome {
  key: string;
  body: { user_id: string; items: { product_id: string; quantity: number }[] };
  /** The HTTP status, or 0 when the connection died without one. */
  status: number;
}

/**
 * Sends ORDERS orders of one unit each, each with its own Idempotency-Key,
 * spread over about half a second so that some are always in flight, and
 * calls `midway` once the first few have been answered.
 */
async function burst(productId: string, midway: () => Promise<void>): Promise<Outcome[]> {
  let answered = 0;
  let fired: Promise<void> | undefined;
  const outcomes = await Promise.all(
    Array.from({ length: ORDERS }, async (_, i): Promise<Outcome> => {
      await new Promise((resolve) => setTimeout(resolve, i * 3));
      const key = randomUUID();
      const body = { user_id: `crash-${i}`, items: [{ product_id: productId, quantity: 1 }] };
      const status = await placeOrder(body, key);
      if (++answered === 20) fired = midway();
      return { key, body, status };
    }),
  );
  await fired;
  return outcomes;
}

/** Places an order; answers its status and, for a problem, its code (status 0: the connection died). */
async function placeOrder(body: Outcome["body"], key: string): Promise<number> {
  return (await placeOrderWithCode(body, key)).status;
}

async function placeOrderWithCode(body: Outcome["body"], key: string): Promise<{ status: number; code?: string }> {
  try {
    const res = await fetch(`${orderProcess?.url}/api/v1/orders`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": key, authorization: await bearer(body.user_id, []) },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as { code?: string };
    return { status: res.status, code: answer.code };
  } catch {
    return { status: 0 };
  }
}

/** Whether a retry got a final answer: the confirmed order, or its rejection for want of stock. */
const final = (answer: { status: number; code?: string }) =>
  answer.status === 201 || (answer.status === 409 && answer.code === "insufficient_stock");

async function createProduct(stock: number): Promise<string> {
  const { product } = await inventory.createProduct({
    sku: `CRASH-${randomUUID().slice(0, 8)}`,
    name: "Crash test product",
    priceMinor: 1000n,
    currency: "USD",
    initialStock: stock,
  });
  return product?.id ?? "";
}

/** Waits until no order is pending and every stock action is acknowledged; returns the consistency report. */
async function converged(): Promise<ConsistencyReport> {
  return eventually(async () => {
    const report = await checkConsistency({ ordersUrl: ordersDb, inventoryUrl: inventoryDb, recheckAfterMs: 50 });
    expect(report.inProgress).toBe(0);
    return report;
  }, 30_000);
}

async function statusCounts(): Promise<Record<string, number>> {
  const rows = await orders.selectFrom("orders").select(["status"]).select((eb) => eb.fn.countAll<string>().as("n")).groupBy("status").execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

async function reservedOf(productId: string): Promise<number> {
  const { product } = await inventory.getProduct({ productId });
  return product?.stock?.reserved ?? -1;
}

test("inventory killed in the middle of 200 orders and restarted: every order ends confirmed or rejected, and nothing is leaked", async () => {
  const stock = 120;
  const product = await createProduct(stock);
  const port = inventoryProcess?.port;

  const outcomes = await burst(product, async () => {
    await inventoryProcess?.crash();
    inventoryProcess = await startService("inventory-service", { ...INVENTORY_AUTH_ENV, DATABASE_URL: inventoryDb }, port);
  });

  // While inventory was down, clients got 503 (the order stays pending) or a final answer.
  expect(outcomes.every((o) => [201, 409, 503].includes(o.status))).toBe(true);
  const report = await converged();
  const counts = await statusCounts();
  expect(counts.pending ?? 0).toBe(0);
  // Demand (200) exceeds stock (120): exactly the stock is sold, nothing more, nothing lost.
  expect(counts).toEqual({ confirmed: stock, rejected: ORDERS - stock });
  expect(await reservedOf(product)).toBe(stock);
  expect(report.findings).toEqual([]);

  // A client retrying a 503 with its key gets the order's final answer, and no second order.
  const retried = await Promise.all(outcomes.filter((o) => o.status === 503).map((o) => placeOrderWithCode(o.body, o.key)));
  expect(retried.filter((answer) => !final(answer))).toEqual([]);
  expect(await statusCounts()).toEqual({ confirmed: stock, rejected: ORDERS - stock });
});

test("order service killed while 200 orders are in flight and restarted: everything converges and no stock is leaked", async () => {
  const stock = 150;
  const product = await createProduct(stock);
  const port = orderProcess?.port;

  const outcomes = await burst(product, async () => {
    await orderProcess?.crash();
  });
  orderProcess = await startService(
    "order-service",
    { ...ORDER_ENV, DATABASE_URL: ordersDb, INVENTORY_SERVICE_URL: inventoryProcess?.url ?? "" },
    port,
  );

  // Some requests died with the process: those orders, stored or not, must settle without their client.
  expect(outcomes.some((o) => o.status === 0)).toBe(true);
  let report = await converged();
  let counts = await statusCounts();
  expect(counts.pending ?? 0).toBe(0);
  expect(await reservedOf(product)).toBe(counts.confirmed ?? 0);
  expect(report.findings).toEqual([]);

  // Every client retries with its key: each gets a final answer, and each key has exactly one order.
  const retried = await Promise.all(outcomes.map((o) => placeOrderWithCode(o.body, o.key)));
  expect(retried.filter((answer) => !final(answer))).toEqual([]);
  report = await converged();
  counts = await statusCounts();
  expect(counts).toEqual({ confirmed: stock, rejected: ORDERS - stock });
  expect(await reservedOf(product)).toBe(stock);
  expect(report.findings).toEqual([]);
});
