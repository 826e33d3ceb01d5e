import pg from "pg";
import { afterAll, beforeAll, expect, test } from "vitest";
import { call, createProduct, startSystem, type TestSystem } from "./system.ts";

let system: TestSystem;

beforeAll(async () => {
  system = await startSystem("hotpath", { env: {} });
});
afterAll(() => system?.close());

/** Runs `action` and returns the statements sent to the orders database meanwhile. */
async function ordersStatements(action: () => Promise<unknown>): Promise<string[]> {
  const ordersDatabase = new URL(system.ordersDatabaseUrl).pathname.slice(1);
  const seen: string[] = [];
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: Parameters<typeof query>) {
    const [config] = args as unknown[];
    const text = typeof config === "string" ? config : (config as { text?: string } | undefined)?.text;
    if (this.database === ordersDatabase) seen.push(text ?? "");
    return Reflect.apply(query, this, args);
  } as typeof query;
  try {
    await action();
  } finally {
    pg.Client.prototype.query = query;
  }
  return seen;
}

test("a confirmed single-item order costs two statements on the orders database", async () => {
  const product = await createProduct(system, { stock: 10 });
  // Warm up: pool connections and the inventory session exist before measuring.
  await call(`${system.api}/orders`, { body: { user_id: "warm", items: [{ product_id: product, quantity: 1 }] } });

  let status = 0;
  const statements = await ordersStatements(async () => {
    ({ status } = await call(`${system.api}/orders`, {
      body: { user_id: "u", items: [{ product_id: product, quantity: 1 }] },
    }));
  });

  expect(status).toBe(201);
  expect(statements).toHaveLength(2);
  expect(statements[0]).toMatch(/new_orders as \(\s*insert into orders/);
  expect(statements[1]).toMatch(/settled as \(\s*update orders/);
});

test("with an Idempotency-Key it still costs two statements: the key is written with the order, its response with the confirmation", async () => {
  const product = await createProduct(system, { stock: 10 });
  await call(`${system.api}/orders`, { body: { user_id: "warm", items: [{ product_id: product, quantity: 1 }] } });

  let status = 0;
  const statements = await ordersStatements(async () => {
    ({ status } = await call(`${system.api}/orders`, {
      body: { user_id: "u", items: [{ product_id: product, quantity: 1 }] },
      headers: { "idempotency-key": "hot-path-key" },
    }));
  });

  expect(status).toBe(201);
  expect(statements).toHaveLength(2);
  expect(statements[0]).toMatch(/insert into idempotency_keys/);
  expect(statements[1]).toMatch(/settled as \(\s*update orders.*update idempotency_keys/s);
});
