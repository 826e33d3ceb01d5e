import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { call, createProduct, startSystem, stockOf, type TestSystem } from "./system.ts";

let system: TestSystem;

beforeAll(async () => {
  system = await startSystem("idem", { env: { INVENTORY_TIMEOUT_MS: "500" } });
});
afterAll(() => system?.close());

const place = (body: unknown, key?: string) =>
  call(`${system.api}/orders`, { body, headers: key === undefined ? {} : { "idempotency-key": key } });
const act = (orderId: string, action: "cancel" | "fulfill", key?: string) =>
  call(`${system.api}/orders/${orderId}/${action}`, {
    method: "POST",
    headers: key === undefined ? {} : { "idempotency-key": key },
  });

async function ordersOf(userId: string) {
  return system.app.db.selectFrom("orders").select(["id", "status"]).where("user_id", "=", userId).execute();
}

describe("POST /orders with an Idempotency-Key", () => {
  test("replays the first response, status and body, for the same key and request, and stores one order", async () => {
    const product = await createProduct(system, { stock: 10 });
    const user = `u-${randomUUID()}`;
    const body = { user_id: user, items: [{ product_id: product, quantity: 2 }] };
    const key = randomUUID();

    const first = await place(body, key);
    // The same request with its fields in another order is the same request.
    const again = await place({ items: [{ quantity: 2, product_id: product }], user_id: user }, key);

    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.headers.get("location")).toBe(first.headers.get("location"));
    expect(again.body).toEqual(first.body);
    expect(await ordersOf(user)).toHaveLength(1);
    expect(await stockOf(system, product)).toMatchObject({ reserved: 2 });
  });

  test("the same key sent 50 times at once: one order; the first request answers 201, every other one replays it or gets 409 in flight", async () => {
    const product = await createProduct(system, { stock: 100 });
    const user = `u-${randomUUID()}`;
    const body = { user_id: user, items: [{ product_id: product, quantity: 1 }] };
    const key = randomUUID();

    const responses = await Promise.all(Array.from({ length: 50 }, () => place(body, key)));

    const fresh = responses.filter((r) => r.status === 201 && r.headers.get("idempotent-replayed") === null);
    const replayed = responses.filter((r) => r.status === 201 && r.headers.get("idempotent-replayed") === "true");
    const inFlight = responses.filter((r) => r.status === 409);
    expect(fresh).toHaveLength(1);
    expect(replayed.length + inFlight.length).toBe(49);
    for (const r of replayed) expect(r.body).toEqual(fresh[0]?.body);
    for (const r of inFlight) {
      expect(r.body).toMatchObject({ code: "idempotency_key_in_flight", status: 409 });
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    expect(await ordersOf(user)).toEqual([{ id: fresh[0]?.body.id, status: "confirmed" }]);
    expect(await stockOf(system, product)).toMatchObject({ reserved: 1 });

    const later = await place(body, key);
    expect(later.status).toBe(201);
    expect(later.headers.get("idempotent-replayed")).toBe("true");
    expect(later.body).toEqual(fresh[0]?.body);
  });

  test("the same key with a different body is 422 idempotency_key_reused, and changes nothing", async () => {
    const product = await createProduct(system, { stock: 10 });
    const user = `u-${randomUUID()}`;
    const key = randomUUID();
    expect((await place({ user_id: user, items: [{ product_id: product, quantity: 1 }] }, key)).status).toBe(201);

    const res = await place({ user_id: user, items: [{ product_id: product, quantity: 3 }] }, key);

    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ code: "idempotency_key_reused", status: 422 });
    expect(await ordersOf(user)).toHaveLength(1);
    expect(await stockOf(system, product)).toMatchObject({ reserved: 1 });
  });

  test("replays a rejection too: the same problem document, and no second order", async () => {
    const product = await createProduct(system, { stock: 1 });
    const user = `u-${randomUUID()}`;
    const body = { user_id: user, items: [{ product_id: product, quantity: 5 }] };
    const key = randomUUID();

    const first = await place(body, key);
    const again = await place(body, key);

    expect(first.status).toBe(409);
    expect(first.body.code).toBe("insufficient_stock");
    expect(again.status).toBe(409);
    expect(again.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
    expect(await ordersOf(user)).toEqual([{ id: first.body.order_id, status: "rejected" }]);
  });

  test("a key is scoped to its endpoint: the same key on another endpoint is a new request", async () => {
    const product = await createProduct(system, { stock: 10 });
    const key = randomUUID();
    const placed = await place({ user_id: "scoped", items: [{ product_id: product, quantity: 1 }] }, key);

    const cancelled = await act(placed.body.id, "cancel", key);

    expect(cancelled.status).toBe(200);
    expect(cancelled.headers.get("idempotent-replayed")).toBeNull();
    expect(cancelled.body.status).toBe("cancelled");
  });

  test("a key must be 1 to 255 characters, else 400 naming the header", async () => {
    const product = await createProduct(system, { stock: 10 });
    const body = { user_id: "bad-key", items: [{ product_id: product, quantity: 1 }] };

    for (const key of ["", "k".repeat(256)]) {
      const res = await place(body, key);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe("validation_failed");
      expect(res.body.errors).toEqual([expect.objectContaining({ field: "/headers/idempotency-key" })]);
    }
    expect((await place(body, "k".repeat(255))).status).toBe(201);
    expect(await ordersOf("bad-key")).toHaveLength(1);
  });

  test("a 503 is not stored: after inventory returns, a retry with the key drives the same order to 201", async () => {
    const product = await createProduct(system, { stock: 10 });
    const user = `u-${randomUUID()}`;
    const body = { user_id: user, items: [{ product_id: product, quantity: 3 }] };
    const key = randomUUID();

    await system.stopInventory();
    const unavailable = await place(body, key);
    await system.startInventory();
    const retried = await place(body, key);

    expect(unavailable.status).toBe(503);
    expect(unavailable.body.code).toBe("inventory_unavailable");
    expect(retried.status).toBe(201);
    expect(retried.headers.get("idempotent-replayed")).toBeNull();
    expect(retried.body.id).toBe(unavailable.body.order_id);
    expect(await ordersOf(user)).toEqual([{ id: unavailable.body.order_id, status: "confirmed" }]);
    expect(await stockOf(system, product)).toMatchObject({ reserved: 3 });
    const replay = await place(body, key);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(retried.body);
  });
});

describe("cancel and fulfil with an Idempotency-Key", () => {
  test("replay their first answer, success or conflict, whatever happened to the order since", async () => {
    const product = await createProduct(system, { stock: 10 });
    const placed = await place({ user_id: "acts", items: [{ product_id: product, quantity: 2 }] });
    const fulfilKey = randomUUID();
    const cancelKey = randomUUID();

    const fulfilled = await act(placed.body.id, "fulfill", fulfilKey);
    const refused = await act(placed.body.id, "cancel", cancelKey);
    const fulfilledAgain = await act(placed.body.id, "fulfill", fulfilKey);
    const refusedAgain = await act(placed.body.id, "cancel", cancelKey);

    expect(fulfilled.status).toBe(200);
    expect(fulfilledAgain.status).toBe(200);
    expect(fulfilledAgain.headers.get("idempotent-replayed")).toBe("true");
    expect(fulfilledAgain.body).toEqual(fulfilled.body);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: "status_conflict", order_status: "fulfilled" });
    expect(refusedAgain.status).toBe(409);
    expect(refusedAgain.headers.get("idempotent-replayed")).toBe("true");
    expect(refusedAgain.body).toEqual(refused.body);
    expect(await stockOf(system, product)).toEqual({ onHand: 8, reserved: 0, available: 8 });
  });

  test("the same key for another order is 422", async () => {
    const product = await createProduct(system, { stock: 10 });
    const a = await place({ user_id: "two", items: [{ product_id: product, quantity: 1 }] });
    const b = await place({ user_id: "two", items: [{ product_id: product, quantity: 1 }] });
    const key = randomUUID();

    expect((await act(a.body.id, "cancel", key)).status).toBe(200);
    const res = await act(b.body.id, "cancel", key);

    expect(res.status).toBe(422);
    expect(res.body.code).toBe("idempotency_key_reused");
    expect((await call(`${system.api}/orders/${b.body.id}`)).body.status).toBe("confirmed");
  });

  test("a key still locked by a request is 409 in flight; once its lease has passed, a retry takes the request over", async () => {
    const product = await createProduct(system, { stock: 10 });
    const placed = await place({ user_id: "lease", items: [{ product_id: product, quantity: 1 }] });
    const key = randomUUID();
    // As a request that died after locking its key: the key is locked, with no response.
    expect((await act(placed.body.id, "cancel", key)).status).toBe(200);
    await system.app.db
      .updateTable("idempotency_keys")
      .set({ response_status: null, response_body: null, locked_until: sql<Date>`now() + interval '1 hour'` })
      .where("key", "=", key)
      .execute();

    const busy = await act(placed.body.id, "cancel", key);
    await system.app.db.updateTable("idempotency_keys").set({ locked_until: sql<Date>`now()` }).where("key", "=", key).execute();
    const takenOver = await act(placed.body.id, "cancel", key);

    expect(busy.status).toBe(409);
    expect(busy.body.code).toBe("idempotency_key_in_flight");
    expect(takenOver.status).toBe(200);
    expect(takenOver.body.status).toBe("cancelled");
    expect((await act(placed.body.id, "cancel", key)).headers.get("idempotent-replayed")).toBe("true");
  });
});
