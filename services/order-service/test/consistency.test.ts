import { checkConsistency, formatReport } from "@ecommerce/tools/check-consistency.ts";
import { sql } from "kysely";
import { afterAll, beforeAll, expect, test } from "vitest";
import { call, createProduct, eventually, startSystem, type TestSystem } from "./system.ts";

let system: TestSystem;

beforeAll(async () => {
  system = await startSystem("consistency", { reconcile: true, env: { RECONCILE_INTERVAL_MS: "100" } });
});
afterAll(() => system?.close());

const check = () => checkConsistency({ ordersUrl: system.ordersDatabaseUrl, inventoryUrl: system.inventoryDatabaseUrl, recheckAfterMs: 50 });

test("finds nothing once every order of every kind has settled, and reports what it looked at", async () => {
  const product = await createProduct(system, { stock: 20 });
  const order = (quantity: number) =>
    call(`${system.api}/orders`, { body: { user_id: "mix", items: [{ product_id: product, quantity }] } });
  const [kept, cancelled, fulfilled] = await Promise.all([order(2), order(3), order(4)]);
  const rejected = await order(100);
  await call(`${system.api}/orders/${cancelled.body.id}/cancel`, { method: "POST" });
  await call(`${system.api}/orders/${fulfilled.body.id}/fulfill`, { method: "POST" });
  expect([kept.status, rejected.status]).toEqual([201, 409]);

  const report = await eventually(async () => {
    const r = await check();
    expect(r.inProgress).toBe(0);
    return r;
  });

  expect(report.findings).toEqual([]);
  expect(report.warnings).toEqual([]);
  expect(report.checked).toMatchObject({ liveReservations: 1 });
  expect(formatReport(report, { orders: "orders", inventory: "inventory" })).toContain("OK: no inconsistency found");
});

test("finds a planted inconsistency: a confirmed order whose reservation inventory released behind its back", async () => {
  const product = await createProduct(system, { stock: 10 });
  const placed = await call(`${system.api}/orders`, { body: { user_id: "planted", items: [{ product_id: product, quantity: 2 }] } });
  await eventually(async () => expect((await check()).inProgress).toBe(0));

  await sql`UPDATE reservations SET status = 'released' WHERE order_id = ${placed.body.id}`.execute(system.inventoryServer.db);
  const report = await check();

  expect(report.findings).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ check: "confirmed_without_reservation", subject: placed.body.id }),
      // Its two units are still counted as reserved, by no live reservation.
      expect.objectContaining({ check: "reserved_mismatch", subject: product }),
    ]),
  );
  expect(formatReport(report, { orders: "orders", inventory: "inventory" })).toContain("FOUND");
  // Put it back as it was, so the other tests see a consistent system.
  await sql`UPDATE reservations SET status = 'confirmed' WHERE order_id = ${placed.body.id}`.execute(system.inventoryServer.db);
  expect((await check()).findings).toEqual([]);
});

test("finds a live reservation held for an order that is cancelled", async () => {
  const product = await createProduct(system, { stock: 10 });
  const placed = await call(`${system.api}/orders`, { body: { user_id: "leak", items: [{ product_id: product, quantity: 1 }] } });
  await sql`UPDATE orders SET status = 'cancelled', stock_synced_at = now() WHERE id = ${placed.body.id}`.execute(system.app.db);

  const report = await check();

  expect(report.findings).toEqual([
    expect.objectContaining({ check: "reservation_without_live_order", subject: placed.body.id }),
  ]);
  await sql`UPDATE orders SET stock_synced_at = NULL WHERE id = ${placed.body.id}`.execute(system.app.db);
  await eventually(async () => expect((await check()).findings).toEqual([]));
});
