import { afterAll, beforeAll, expect, test } from "vitest";
import { call, createProduct, startSystem, stockOf, type TestSystem } from "./system.ts";

let system: TestSystem;

beforeAll(async () => {
  system = await startSystem("race", { env: {} });
});
afterAll(() => system?.close());

test("300 clients racing for 25 units: exactly 25 orders confirmed, the rest rejected, nothing oversold", async () => {
  const product = await createProduct(system, { stock: 25 });

  const responses = await Promise.all(
    Array.from({ length: 300 }, (_, i) =>
      call(`${system.api}/orders`, { body: { user_id: `racer-${i}`, items: [{ product_id: product, quantity: 1 }] } }),
    ),
  );

  const statuses = responses.map((r) => r.status);
  expect(statuses.filter((s) => s === 201)).toHaveLength(25);
  expect(statuses.filter((s) => s === 409)).toHaveLength(275);
  const confirmed = responses.filter((r) => r.status === 201);
  const reservedByOrders = confirmed.reduce((sum, r) => sum + r.body.items[0].quantity, 0);
  expect(await stockOf(system, product)).toEqual({ onHand: 25, reserved: reservedByOrders, available: 0 });

  const stored = await call(`${system.api}/orders?status=confirmed&limit=100`);
  expect(stored.body.data).toHaveLength(25);
});
