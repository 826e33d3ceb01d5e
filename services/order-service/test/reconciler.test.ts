import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, expect, test } from "vitest";
import { IDEMPOTENT_ENDPOINTS, idempotentRequest } from "../src/orders/idempotency.ts";
import { claimPendingOrders, storePendingOrders } from "../src/orders/repository.ts";
import { call, createProduct, eventsOf, eventually, startSystem, stockOf, type TestSystem } from "./system.ts";

let system: TestSystem;

beforeAll(async () => {
  system = await startSystem("reconcile", {
    reconcile: true,
    env: {
      RECONCILE_INTERVAL_MS: "100",
      PENDING_GRACE_MS: "300",
      PENDING_GIVE_UP_MS: "5000",
      INVENTORY_TIMEOUT_MS: "500",
    },
  });
});
afterAll(() => system?.close());

/** Stores a pending order the way POST /orders does, as if its process died right after. */
async function abandonedPlacement(body: { user_id: string; items: { product_id: string; quantity: number }[] }, key: string) {
  const request = idempotentRequest(body.user_id, IDEMPOTENT_ENDPOINTS.placeOrder, key, { params: {}, body });
  const [order] = await storePendingOrders(system.app.db, [
    { id: uuidv7(), user_id: body.user_id, items: body.items, idempotency: { request, lockMs: 60_000 } },
  ]);
  if (!order) throw new Error("key taken");
  return order;
}

const place = (body: unknown, key: string) => call(`${system.api}/orders`, { body, headers: { "idempotency-key": key } });

test("confirms an order its request left pending, and answers the request's key with the 201 the client would have got", async () => {
  const product = await createProduct(system, { stock: 10, priceMinor: 2500 });
  const body = { user_id: `u-${randomUUID()}`, items: [{ product_id: product, quantity: 2 }] };
  const key = randomUUID();
  const order = await abandonedPlacement(body, key);

  // The key is still locked by the dead request.
  const early = await place(body, key);
  const confirmed = await eventually(async () => {
    const res = await call(`${system.api}/orders/${order.id}`);
    expect(res.body.status).toBe("confirmed");
    return res.body;
  });
  const retried = await place(body, key);

  expect(early.status).toBe(409);
  expect(early.body.code).toBe("idempotency_key_in_flight");
  expect(confirmed).toMatchObject({ total_minor: 5000, currency: "USD" });
  expect(retried.status).toBe(201);
  expect(retried.headers.get("idempotent-replayed")).toBe("true");
  expect(retried.body).toEqual(confirmed);
  expect(await stockOf(system, product)).toMatchObject({ reserved: 2 });
  // The reconciler's settling statement records the confirmation like the request's would have.
  const events = await eventually(async () => {
    const listed = await eventsOf(system, order.id);
    expect(listed).toHaveLength(2);
    return listed;
  });
  expect(events.map((e) => e.type)).toEqual(["orders.v1.order.placed", "orders.v1.order.confirmed"]);
  expect(events[1]!.data.order).toMatchObject({
    status: "ORDER_STATUS_CONFIRMED",
    lines: [{ productId: product, quantity: 2, unitPriceMinor: "2500", currency: "USD" }],
    totalMinor: "5000",
    currency: "USD",
  });
});

test("rejects an order pending for longer than PENDING_GIVE_UP_MS, releases its stock and answers its key with the rejection", async () => {
  const product = await createProduct(system, { stock: 10 });
  const body = { user_id: `u-${randomUUID()}`, items: [{ product_id: product, quantity: 4 }] };
  const key = randomUUID();
  const order = await abandonedPlacement(body, key);
  // Inventory reserved the stock but the answer never arrived, long ago.
  await system.inventory.reserveStock({ orderId: order.id, lines: [{ productId: product, quantity: 4 }] });
  await sql`UPDATE orders SET created_at = now() - interval '1 minute' WHERE id = ${order.id}`.execute(system.app.db);

  const rejected = await eventually(async () => {
    const res = await call(`${system.api}/orders/${order.id}`);
    expect(res.body.status).toBe("rejected");
    return res.body;
  });
  const retried = await place(body, key);

  expect(rejected.rejection_reason).toBe("inventory did not answer in time");
  await eventually(async () => expect(await stockOf(system, product)).toEqual({ onHand: 10, reserved: 0, available: 10 }));
  expect(retried.status).toBe(422);
  expect(retried.headers.get("idempotent-replayed")).toBe("true");
  expect(retried.body).toMatchObject({ code: "order_rejected", order_id: order.id });
  const events = await eventually(async () => {
    const listed = await eventsOf(system, order.id);
    expect(listed).toHaveLength(2);
    return listed;
  });
  expect(events.map((e) => e.type)).toEqual(["orders.v1.order.placed", "orders.v1.order.rejected"]);
  expect(events[1]!.data.order).toMatchObject({ status: "ORDER_STATUS_REJECTED", rejectionReason: "inventory did not answer in time" });
});

test("replicas claiming pending orders at once share them: each order is claimed exactly once", async () => {
  // Sixty fresh pending orders: within this system's own grace period, so
  // its reconciler leaves them alone while the "replicas" below (no grace)
  // claim them.
  const { rows } = await sql<{ id: string }>`
    INSERT INTO orders (id, user_id, status)
    SELECT gen_random_uuid(), 'replicas', 'pending' FROM generate_series(1, 60)
    RETURNING id`.execute(system.app.db);
  const ids = rows.map((r) => r.id);

  const lease = { minMs: 60_000, baseMs: 60_000, maxMs: 60_000 };
  const claims = await Promise.all(
    Array.from({ length: 4 }, () => claimPendingOrders(system.app.db, { graceMs: 0, giveUpMs: 3_600_000, lease, limit: 20 })),
  );

  const claimed = claims.flat().map((o) => o.id).filter((id) => ids.includes(id));
  expect(claimed).toHaveLength(60);
  expect(new Set(claimed).size).toBe(60);
  // Claimed again before the lease passes: nothing.
  expect(await claimPendingOrders(system.app.db, { graceMs: 0, giveUpMs: 3_600_000, lease, limit: 100 })).toEqual([]);
  await sql`UPDATE orders SET status = 'cancelled', stock_synced_at = now() WHERE id = ANY(${ids}::uuid[])`.execute(system.app.db);
});

test("prunes idempotency keys older than 24 hours", async () => {
  const product = await createProduct(system, { stock: 10 });
  const oldKey = randomUUID();
  const freshKey = randomUUID();
  expect((await place({ user_id: "prune", items: [{ product_id: product, quantity: 1 }] }, oldKey)).status).toBe(201);
  expect((await place({ user_id: "prune", items: [{ product_id: product, quantity: 1 }] }, freshKey)).status).toBe(201);
  await sql`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = ${oldKey}`.execute(system.app.db);

  await eventually(async () => {
    const keys = await system.app.db.selectFrom("idempotency_keys").select("key").where("key", "in", [oldKey, freshKey]).execute();
    expect(keys.map((k) => k.key)).toEqual([freshKey]);
  });
});
