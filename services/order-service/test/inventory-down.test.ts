import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { call, createProduct, startSystem, stockOf, type TestSystem } from "./system.ts";

const TIMEOUT_MS = 500;
/** Time to write and read the order around the call, on a busy test machine. */
const MARGIN_MS = 500;

describe("when inventory has stopped", () => {
  let system: TestSystem;
  let product: string;

  beforeAll(async () => {
    system = await startSystem("invdown", { env: { INVENTORY_TIMEOUT_MS: String(TIMEOUT_MS) } });
    product = await createProduct(system, { stock: 10 });
    // The app has talked to inventory before it goes away.
    expect((await call(`${system.api}/orders`, { body: { user_id: "u", items: [{ product_id: product, quantity: 1 }] } })).status).toBe(201);
    await system.stopInventory();
  });
  afterAll(() => system?.close());

  test("placing an order answers 503 with Retry-After in time, and the order stays pending", async () => {
    const started = performance.now();
    const res = await call(`${system.api}/orders`, { body: { user_id: "u", items: [{ product_id: product, quantity: 1 }] } });
    const elapsed = performance.now() - started;

    expect(res.status).toBe(503);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(res.body).toMatchObject({ code: "inventory_unavailable", order_id: expect.any(String) });
    expect(elapsed).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    const stored = await call(`${system.api}/orders/${res.body.order_id}`);
    expect(stored.body.status).toBe("pending");
  });

  test("reading orders still works, products answer 503, and the service reports not ready", async () => {
    expect((await call(`${system.api}/orders?limit=1`)).status).toBe(200);
    const products = await call(`${system.api}/products`);
    expect(products.status).toBe(503);
    expect(products.body.code).toBe("inventory_unavailable");
    const ready = await call(`${system.root}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body.detail).toContain("inventory");
    expect((await call(`${system.root}/healthz`)).status).toBe(200);
  });
});

describe("when inventory accepts connections but never answers", () => {
  let system: TestSystem;
  let blackHole: Server;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    blackHole = createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => blackHole.listen(0, "127.0.0.1", resolve));
    const { port } = blackHole.address() as AddressInfo;
    system = await startSystem("invhang", {
      inventoryUrl: `http://127.0.0.1:${port}`,
      env: { INVENTORY_TIMEOUT_MS: String(TIMEOUT_MS) },
    });
  });
  afterAll(async () => {
    await system?.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => blackHole?.close(resolve));
  });

  test("placing an order answers 503 once the deadline passes, and holds no stock", async () => {
    const product = await createProduct(system, { stock: 10 });
    const started = performance.now();
    const res = await call(`${system.api}/orders`, { body: { user_id: "u", items: [{ product_id: product, quantity: 2 }] } });
    const elapsed = performance.now() - started;

    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBeTruthy();
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    expect((await call(`${system.api}/orders/${res.body.order_id}`)).body.status).toBe("pending");
    expect(await stockOf(system, product)).toMatchObject({ reserved: 0 });
  });
});
