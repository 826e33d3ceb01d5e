import { afterAll, beforeAll, expect, test } from "vitest";
import { call, createProduct, startSystem, type TestSystem } from "./system.ts";

/**
 * What the order service reads from inventory is bounded too: a message
 * over INVENTORY_READ_MAX_BYTES fails its call, which answers like any
 * inventory failure (503), and the service goes on serving.
 */

let system: TestSystem;

beforeAll(async () => {
  system = await startSystem("invlimits", { env: { RECONCILE_INTERVAL_MS: "0", INVENTORY_READ_MAX_BYTES: "2048" } });
  await Promise.all(Array.from({ length: 30 }, () => createProduct(system, { stock: 1 })));
});
afterAll(() => system?.close());

test("a page from inventory larger than INVENTORY_READ_MAX_BYTES is refused with 503; smaller answers pass", async () => {
  const big = await call(`${system.api}/products?limit=100`);
  expect(big.status).toBe(503);
  expect(big.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(big.body.code).toBe("inventory_unavailable");

  const small = await call(`${system.api}/products?limit=2`);
  expect(small.status).toBe(200);
  expect(small.body.data).toHaveLength(2);
});
