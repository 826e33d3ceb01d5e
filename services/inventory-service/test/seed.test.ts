import { afterAll, beforeAll, expect, it } from "vitest";
import { SAMPLE_PRODUCTS, seed } from "../src/seed.ts";
import { startHarness, stockInconsistencies, type Harness } from "./inventory-harness.ts";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ seed: true });
});
afterAll(() => h.close());

it("loads the five sample products with their fixed ids, prices and stock", async () => {
  const { products } = await h.client.listProducts({});
  expect(products.map((p) => [p.id, p.sku, p.priceMinor, p.stock?.onHand]).sort()).toEqual(
    [
      ["00000000-0000-4000-8000-000000000001", "LAPTOP-GAMING", 149999n, 50],
      ["00000000-0000-4000-8000-000000000002", "SMARTPHONE", 79999n, 100],
      ["00000000-0000-4000-8000-000000000003", "HEADPHONE-BT", 12999n, 200],
      ["00000000-0000-4000-8000-000000000004", "SMART-WATCH", 24999n, 75],
      ["00000000-0000-4000-8000-000000000005", "WIRELESS-EARBUDS", 9999n, 150],
    ].sort(),
  );
  expect(SAMPLE_PRODUCTS).toHaveLength(5);
});

it("changes nothing when seeding again, even after stock has moved", async () => {
  await h.client.reserveStock({
    orderId: "3f1c1f8e-6f55-4a53-9b8e-2a9c4f0e0c11",
    lines: [{ productId: "00000000-0000-4000-8000-000000000002", quantity: 4 }],
  });
  const snapshot = async () => ({
    products: await h.server.db.selectFrom("products").selectAll().orderBy("id").execute(),
    stock: await h.server.db.selectFrom("stock_levels").selectAll().orderBy("product_id").execute(),
    ledger: await h.server.db.selectFrom("stock_movements").selectAll().orderBy("id").execute(),
  });
  const before = await snapshot();
  expect(await seed(h.server.db)).toBe(0);
  expect(await seed(h.server.db)).toBe(0);
  expect(await snapshot()).toEqual(before);
  expect(await stockInconsistencies(h.server)).toEqual([]);
});
