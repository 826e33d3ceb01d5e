import { checkConsistency } from "@ecommerce/tools/check-consistency.ts";
import { afterAll, beforeAll, expect, test } from "vitest";
import { call, createProduct, eventually, startSystem, stockOf, type TestSystem } from "./system.ts";

let system: TestSystem;

beforeAll(async () => {
  // The reconciler pays any stock action whose inline call missed its
  // deadline: 100 commits and releases on one product queue up in inventory.
  system = await startSystem("cancelfulfil", { reconcile: true, env: { RECONCILE_INTERVAL_MS: "100" } });
});
afterAll(() => system?.close());

test("cancel racing fulfil on each of 100 orders: exactly one wins each race, the loser gets 409, and stock follows the winner", async () => {
  const product = await createProduct(system, { stock: 100 });
  const placed = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      call(`${system.api}/orders`, { body: { user_id: `racer-${i}`, items: [{ product_id: product, quantity: 1 }] } }),
    ),
  );
  expect(placed.map((r) => r.status)).toEqual(Array(100).fill(201));

  const races = await Promise.all(
    placed.map(async ({ body: order }) => {
      const [cancel, fulfil] = await Promise.all([
        call(`${system.api}/orders/${order.id}/cancel`, { method: "POST" }),
        call(`${system.api}/orders/${order.id}/fulfill`, { method: "POST" }),
      ]);
      const stored = await call(`${system.api}/orders/${order.id}`);
      return { cancel, fulfil, final: stored.body.status as string };
    }),
  );

  for (const { cancel, fulfil, final } of races) {
    expect([cancel.status, fulfil.status].sort()).toEqual([200, 409]);
    const [winner, loser] = cancel.status === 200 ? [cancel, fulfil] : [fulfil, cancel];
    expect(final).toBe(winner.body.status);
    expect(loser.body).toMatchObject({ code: "status_conflict", order_status: final });
  }
  const fulfilled = races.filter((r) => r.final === "fulfilled").length;
  const cancelled = races.filter((r) => r.final === "cancelled").length;
  expect(fulfilled + cancelled).toBe(100);
  // Fulfilled orders' stock left the warehouse; cancelled orders' came back.
  await eventually(async () =>
    expect(await stockOf(system, product)).toEqual({ onHand: 100 - fulfilled, reserved: 0, available: 100 - fulfilled }),
  );
  const report = await eventually(async () => {
    const r = await checkConsistency({ ordersUrl: system.ordersDatabaseUrl, inventoryUrl: system.inventoryDatabaseUrl });
    expect(r.inProgress).toBe(0);
    return r;
  });
  expect(report.findings).toEqual([]);
});
