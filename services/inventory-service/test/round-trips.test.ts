import { randomUUID } from "node:crypto";
import { createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { createTokenVerifier } from "@ecommerce/auth/verifier.ts";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { createTestDatabase } from "@ecommerce/tools/testing.ts";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { authentication } from "../src/interceptors/authentication.ts";
import { createInventoryService } from "../src/stock/service.ts";
import { testCredentials } from "./inventory-harness.ts";

// The service on a pool that records every statement sent: one statement
// outside a transaction is one round trip and one commit.
const statements: string[] = [];
const batches: number[] = [];
let db: Kysely<Database>;
let client: Client<typeof InventoryService>;

beforeAll(async () => {
  const pool = new pg.Pool({ connectionString: await createTestDatabase("inventory"), max: 10 });
  pool.on("connect", (conn) => {
    const query = conn.query.bind(conn) as (...args: unknown[]) => unknown;
    conn.query = ((...args: unknown[]) => {
      const text = args[0];
      statements.push(typeof text === "string" ? text : (text as { text: string }).text);
      return query(...args);
    }) as typeof conn.query;
  });
  db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  await migrate(db);
  const service = createInventoryService({ db, reservationTtlSeconds: 60, onBatch: (_step, size) => batches.push(size) });
  // Authenticated as over the wire: checking a token sends no statement.
  const credentials = await testCredentials();
  const transport = createRouterTransport((router) => router.service(InventoryService, service), {
    router: { interceptors: [authentication({ verifier: createTokenVerifier(credentials.auth), reflectionPublic: true })] },
    transport: { interceptors: [credentials.operator] },
  });
  client = createClient(InventoryService, transport);
});
afterAll(() => db.destroy());
beforeEach(() => {
  statements.length = 0;
  batches.length = 0;
});

async function product(initialStock: number): Promise<string> {
  const { product } = await client.createProduct({ sku: `RT-${randomUUID().slice(0, 8)}`, name: "Round trip", priceMinor: 100n, currency: "USD", initialStock });
  statements.length = 0;
  return product!.id;
}

const transactions = () => statements.filter((s) => /^begin/i.test(s)).length;

it("reserves a single order in one statement outside any transaction: one round trip, one commit", async () => {
  const id = await product(10);
  await client.reserveStock({ orderId: randomUUID(), lines: [{ productId: id, quantity: 1 }] });
  expect(statements).toHaveLength(1);
  expect(statements[0]).toMatch(/reserve_orders\(/);
  expect(transactions()).toBe(0);
});

it("decides a ReserveOrders batch of any size in one statement", async () => {
  const ids = [await product(1000), await product(1000)];
  const orders = Array.from({ length: 200 }, (_, i) => ({
    orderId: randomUUID(),
    lines: i % 2 ? [{ productId: ids[0]!, quantity: 1 }, { productId: ids[1]!, quantity: 2 }] : [{ productId: ids[1]!, quantity: 1 }],
  }));
  const { outcomes } = await client.reserveOrders({ orders });
  expect(outcomes.every((o) => o.result.case === "reservation")).toBe(true);
  expect(statements).toHaveLength(1);
  expect(transactions()).toBe(0);
});

it("spends one statement per batch on concurrent ReserveStock calls", async () => {
  const id = await product(1000);
  await Promise.all(Array.from({ length: 100 }, () => client.reserveStock({ orderId: randomUUID(), lines: [{ productId: id, quantity: 1 }] })));
  expect(batches.reduce((a, b) => a + b, 0)).toBe(100);
  expect(statements).toHaveLength(batches.length);
  expect(batches.length).toBeLessThan(100);
});

it("releases or commits a batch in one transaction of the same few statements whatever its size", async () => {
  const id = await product(1000);
  const reserve = async (n: number) => {
    const orders = Array.from({ length: n }, () => ({ orderId: randomUUID(), lines: [{ productId: id, quantity: 1 }] }));
    await client.reserveOrders({ orders });
    statements.length = 0;
    return orders.map((o) => o.orderId);
  };
  const [one] = await reserve(1);
  await client.releaseStock({ orderId: one!, reason: "cancelled" });
  const perBatch = statements.length;
  expect(transactions()).toBe(1);

  const many = await reserve(60);
  batches.length = 0;
  await Promise.all(many.map((orderId) => client.commitStock({ orderId })));
  expect(transactions()).toBe(batches.length);
  expect(statements).toHaveLength(perBatch * batches.length);
  expect(batches.length).toBeLessThan(60);
});
