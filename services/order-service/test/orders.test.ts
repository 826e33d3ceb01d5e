import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { call, createProduct, startSystem, stockOf, type TestSystem } from "./system.ts";

let system: TestSystem;

beforeAll(async () => {
  system = await startSystem("orders", { env: {} });
});
afterAll(() => system?.close());

const placeOrder = (body: unknown, headers?: Record<string, string>) =>
  call(`${system.api}/orders`, { body, headers });

describe("placing an order", () => {
  test("confirms it with the inventory's prices and totals, and reserves the stock", async () => {
    const laptop = await createProduct(system, { stock: 10, priceMinor: 149_999 });
    const mouse = await createProduct(system, { stock: 10, priceMinor: 2_550 });

    const res = await placeOrder({
      user_id: "user-1",
      items: [
        { product_id: laptop, quantity: 2 },
        { product_id: mouse, quantity: 3 },
      ],
    });

    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("location")).toBe(`/api/v1/orders/${res.body.id}`);
    expect(res.body).toMatchObject({
      user_id: "user-1",
      status: "confirmed",
      total_minor: 2 * 149_999 + 3 * 2_550,
      currency: "USD",
      rejection_reason: null,
    });
    expect(res.body.items).toEqual(
      expect.arrayContaining([
        { product_id: laptop, quantity: 2, unit_price_minor: 149_999, line_total_minor: 299_998, currency: "USD" },
        { product_id: mouse, quantity: 3, unit_price_minor: 2_550, line_total_minor: 7_650, currency: "USD" },
      ]),
    );
    expect(await stockOf(system, laptop)).toEqual({ onHand: 10, reserved: 2, available: 8 });
    expect(await stockOf(system, mouse)).toEqual({ onHand: 10, reserved: 3, available: 7 });
  });

  test("reads back the same order it answered with", async () => {
    const product = await createProduct(system, { stock: 5 });
    const placed = await placeOrder({ user_id: "user-2", items: [{ product_id: product, quantity: 1 }] });

    const read = await call(`${system.api}/orders/${placed.body.id}`);

    expect(read.status).toBe(200);
    expect(read.body).toEqual(placed.body);
  });

  test("rejects the order when any line is short, naming every short line, and holds no stock", async () => {
    const plenty = await createProduct(system, { stock: 10 });
    const scarce = await createProduct(system, { stock: 2 });

    const res = await placeOrder({
      user_id: "user-3",
      items: [
        { product_id: plenty, quantity: 1 },
        { product_id: scarce, quantity: 3 },
      ],
    });

    expect(res.status).toBe(409);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({
      status: 409,
      code: "insufficient_stock",
      unavailable_items: [{ product_id: scarce, requested: 3, available: 2 }],
    });
    const stored = await call(`${system.api}/orders/${res.body.order_id}`);
    expect(stored.body.status).toBe("rejected");
    expect(stored.body.rejection_reason).toContain(scarce);
    expect(await stockOf(system, plenty)).toEqual({ onHand: 10, reserved: 0, available: 10 });
    expect(await stockOf(system, scarce)).toEqual({ onHand: 2, reserved: 0, available: 2 });
  });

  test("rejects an order for a product inventory does not know with 422", async () => {
    const res = await placeOrder({
      user_id: "user-4",
      items: [{ product_id: "0190c0de-0000-7000-8000-000000000000", quantity: 1 }],
    });

    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ code: "unknown_product", order_id: expect.any(String) });
    const stored = await call(`${system.api}/orders/${res.body.order_id}`);
    expect(stored.body.status).toBe("rejected");
  });

  test("rejects an order whose products are priced in different currencies and gives the stock back", async () => {
    const dollars = await createProduct(system, { stock: 5, currency: "USD" });
    const euros = await createProduct(system, { stock: 5, currency: "EUR" });

    const res = await placeOrder({
      user_id: "user-5",
      items: [
        { product_id: dollars, quantity: 1 },
        { product_id: euros, quantity: 1 },
      ],
    });

    expect(res.status).toBe(422);
    expect(res.body.code).toBe("order_rejected");
    expect(res.body.detail).toContain("different currencies");
    expect((await call(`${system.api}/orders/${res.body.order_id}`)).body.status).toBe("rejected");
    expect(await stockOf(system, dollars)).toMatchObject({ reserved: 0 });
    expect(await stockOf(system, euros)).toMatchObject({ reserved: 0 });
  });

  test("answers a request id, echoing the caller's", async () => {
    const res = await call(`${system.api}/orders/0190c0de-0000-7000-8000-000000000000`, {
      headers: { "x-request-id": "trace-123" },
    });

    expect(res.status).toBe(404);
    expect(res.headers.get("x-request-id")).toBe("trace-123");
    expect(res.body).toMatchObject({ code: "order_not_found", status: 404 });
    const generated = await call(`${system.root}/healthz`);
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("cancelling and fulfilling", () => {
  async function confirmedOrder(quantity: number, stock = 10) {
    const product = await createProduct(system, { stock });
    const res = await placeOrder({ user_id: "user-c", items: [{ product_id: product, quantity }] });
    expect(res.status).toBe(201);
    return { product, order: res.body };
  }

  test("cancelling a confirmed order gives its stock back, and cancelling again changes nothing", async () => {
    const { product, order } = await confirmedOrder(4);

    const cancelled = await call(`${system.api}/orders/${order.id}/cancel`, { method: "POST" });
    const again = await call(`${system.api}/orders/${order.id}/cancel`, { method: "POST" });

    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe("cancelled");
    expect(again.status).toBe(200);
    expect(again.body).toEqual(cancelled.body);
    expect(await stockOf(system, product)).toEqual({ onHand: 10, reserved: 0, available: 10 });
  });

  test("fulfilling a confirmed order commits its stock, and fulfilling again changes nothing", async () => {
    const { product, order } = await confirmedOrder(3);

    const fulfilled = await call(`${system.api}/orders/${order.id}/fulfill`, { method: "POST" });
    const again = await call(`${system.api}/orders/${order.id}/fulfill`, { method: "POST" });

    expect(fulfilled.status).toBe(200);
    expect(fulfilled.body.status).toBe("fulfilled");
    expect(again.status).toBe(200);
    expect(await stockOf(system, product)).toEqual({ onHand: 7, reserved: 0, available: 7 });
  });

  test("refuses to cancel a fulfilled order with 409 and its current status", async () => {
    const { product, order } = await confirmedOrder(2);
    await call(`${system.api}/orders/${order.id}/fulfill`, { method: "POST" });

    const res = await call(`${system.api}/orders/${order.id}/cancel`, { method: "POST" });

    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: "status_conflict", order_id: order.id, order_status: "fulfilled" });
    expect(await stockOf(system, product)).toEqual({ onHand: 8, reserved: 0, available: 8 });
  });

  test("refuses to fulfil a cancelled or rejected order", async () => {
    const { order } = await confirmedOrder(1);
    await call(`${system.api}/orders/${order.id}/cancel`, { method: "POST" });
    const scarce = await createProduct(system, { stock: 0 });
    const rejected = await placeOrder({ user_id: "user-c", items: [{ product_id: scarce, quantity: 1 }] });

    const fromCancelled = await call(`${system.api}/orders/${order.id}/fulfill`, { method: "POST" });
    const fromRejected = await call(`${system.api}/orders/${rejected.body.order_id}/fulfill`, { method: "POST" });
    const cancelRejected = await call(`${system.api}/orders/${rejected.body.order_id}/cancel`, { method: "POST" });

    expect(fromCancelled.body).toMatchObject({ status: 409, order_status: "cancelled" });
    expect(fromRejected.body).toMatchObject({ status: 409, order_status: "rejected" });
    expect(cancelRejected.body).toMatchObject({ status: 409, order_status: "rejected" });
  });

  test("answers 404 for an order that does not exist", async () => {
    const res = await call(`${system.api}/orders/0190c0de-0000-7000-8000-000000000001/cancel`, { method: "POST" });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("order_not_found");
  });
});

describe("listing orders", () => {
  test("pages through a user's orders newest first, and filters by status", async () => {
    const product = await createProduct(system, { stock: 100 });
    const user = `lister-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await placeOrder({ user_id: user, items: [{ product_id: product, quantity: 1 }] });
      ids.push(res.body.id);
    }
    await call(`${system.api}/orders/${ids[1]}/cancel`, { method: "POST" });

    const first = await call(`${system.api}/orders?user_id=${user}&limit=2`);
    const second = await call(`${system.api}/orders?user_id=${user}&limit=2&cursor=${first.body.next_cursor}`);
    const third = await call(`${system.api}/orders?user_id=${user}&limit=2&cursor=${second.body.next_cursor}`);
    const cancelled = await call(`${system.api}/orders?user_id=${user}&status=cancelled`);

    const newestFirst = [...ids].reverse();
    expect(first.body.data.map((o: { id: string }) => o.id)).toEqual(newestFirst.slice(0, 2));
    expect(second.body.data.map((o: { id: string }) => o.id)).toEqual(newestFirst.slice(2, 4));
    expect(third.body.data.map((o: { id: string }) => o.id)).toEqual(newestFirst.slice(4));
    expect(third.body.next_cursor).toBeNull();
    expect(first.body.data[0].items).toHaveLength(1);
    expect(cancelled.body).toEqual({ data: [expect.objectContaining({ id: ids[1], status: "cancelled" })], next_cursor: null });
  });

  test("answers 400 for a cursor it did not make", async () => {
    const res = await call(`${system.api}/orders?cursor=not-a-cursor`);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe("invalid_cursor");
  });
});

describe("products", () => {
  test("shows a product with its price and stock from inventory", async () => {
    const id = await createProduct(system, { stock: 7, priceMinor: 12_999 });

    const res = await call(`${system.api}/products/${id}`);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id,
      price_minor: 12_999,
      currency: "USD",
      stock: { on_hand: 7, reserved: 0, available: 7 },
    });
  });

  test("pages through the catalogue", async () => {
    await createProduct(system, { stock: 1 });
    await createProduct(system, { stock: 1 });

    const first = await call(`${system.api}/products?limit=1`);
    const second = await call(`${system.api}/products?limit=1&cursor=${encodeURIComponent(first.body.next_cursor)}`);

    expect(first.body.data).toHaveLength(1);
    expect(second.body.data).toHaveLength(1);
    expect(second.body.data[0].id).not.toBe(first.body.data[0].id);
  });

  test("answers 404 for a product inventory does not know", async () => {
    const res = await call(`${system.api}/products/0190c0de-0000-7000-8000-000000000002`);
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("product_not_found");
  });
});

describe("operations", () => {
  test("is live and ready while the database and inventory answer", async () => {
    expect((await call(`${system.root}/healthz`)).status).toBe(200);
    expect(await call(`${system.root}/readyz`)).toMatchObject({ status: 200, body: { status: "ready" } });
  });

  test("publishes an OpenAPI 3.1 document of its routes and Swagger UI", async () => {
    const res = await call(`${system.root}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    expect(await new Validator().validate(res.body)).toEqual({ valid: true });
    expect(Object.keys(res.body.paths)).toEqual(
      expect.arrayContaining(["/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/orders/{id}/cancel", "/api/v1/products"]),
    );
    const docs = await fetch(`${system.root}/docs`);
    expect(docs.status).toBe(200);
  });
});
