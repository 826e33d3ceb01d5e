import { afterAll, beforeAll, expect, test } from "vitest";
import { call, createProduct, eventually, startSystem, stockOf, type TestSystem } from "./system.ts";

let system: TestSystem;

beforeAll(async () => {
  system = await startSystem("stocksync", {
    reconcile: true,
    env: { RECONCILE_INTERVAL_MS: "100", INVENTORY_TIMEOUT_MS: "500" },
  });
});
afterAll(() => system?.close());

async function reservationStatus(orderId: string): Promise<string | undefined> {
  const row = await system.inventoryServer.db
    .selectFrom("reservations")
    .select("status")
    .where("order_id", "=", orderId)
    .executeTakeFirst();
  return row?.status;
}

test("a confirmed order's reservation is confirmed in inventory in the background, so it never expires", async () => {
  const product = await createProduct(system, { stock: 5 });
  const placed = await call(`${system.api}/orders`, { body: { user_id: "u", items: [{ product_id: product, quantity: 1 }] } });
  expect(placed.status).toBe(201);

  await eventually(async () => expect(await reservationStatus(placed.body.id)).toBe("confirmed"));
});

test("a cancellation made while inventory is down gives the stock back once inventory returns", async () => {
  const product = await createProduct(system, { stock: 5 });
  const placed = await call(`${system.api}/orders`, { body: { user_id: "u", items: [{ product_id: product, quantity: 2 }] } });
  expect(placed.status).toBe(201);

  await system.stopInventory();
  const cancelled = await call(`${system.api}/orders/${placed.body.id}/cancel`, { method: "POST" });
  expect(cancelled.status).toBe(200);
  expect(cancelled.body.status).toBe("cancelled");
  await system.startInventory();

  await eventually(async () => expect(await stockOf(system, product)).toEqual({ onHand: 5, reserved: 0, available: 5 }));
  expect(await reservationStatus(placed.body.id)).toBe("released");
});
