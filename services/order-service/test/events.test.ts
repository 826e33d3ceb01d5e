import { randomUUID } from "node:crypto";
import { fromJson, toJson } from "@bufbuild/protobuf";
import { EVENT_TYPES, isEventType } from "@ecommerce/events/catalogue.ts";
import { sql, type Transaction } from "kysely";
import pg from "pg";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Database } from "../src/db/database.ts";
import { storePendingOrders, settleOrders, type Settlement } from "../src/orders/repository.ts";
import { directSteps } from "../src/orders/steps.ts";
import { bearer, call, createProduct, eventsOf, eventually, listEvents, startSystem, type ListedEvent, type TestSystem } from "./system.ts";

/**
 * The order events: one per change of an order's status, recorded by the
 * database in the statement that makes the change, whatever makes it, and
 * read back with GET /api/v1/events.
 */

let system: TestSystem;
let db: pg.Client;

beforeAll(async () => {
  system = await startSystem("events", { env: { RECONCILE_INTERVAL_MS: "0" } });
  db = new pg.Client({ connectionString: system.ordersDatabaseUrl });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await system?.close();
});

const place = (body: unknown) => call(`${system.api}/orders`, { body });

/**
 * The events of an order once `count` of them are listed: the listing shows
 * a transaction's events once every older transaction on the server has
 * ended, which other work on the test server can delay for a moment.
 */
const eventsOfOrder = (id: string, count: number) =>
  eventually(async () => {
    const events = await eventsOf(system, id);
    expect(events).toHaveLength(count);
    return events;
  });

const types = (events: ListedEvent[]) => events.map((e) => e.type);
/** Microseconds are kept in the events, milliseconds in the API's answers. */
const sameInstant = (eventTime: string, apiTime: string) => Math.trunc(Date.parse(eventTime)) === Date.parse(apiTime);

/** The envelope every event has: a CloudEvent of this service, about `orderId`. */
function expectEnvelope(event: ListedEvent, type: string, orderId: string) {
  expect(event).toEqual({
    specversion: "1.0",
    id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
    source: "/order-service",
    type,
    subject: orderId,
    time: expect.any(String),
    datacontenttype: "application/json",
    data: expect.any(Object),
  });
  expect(Number.isNaN(Date.parse(event.time))).toBe(false);
}

describe("each change of an order's status records exactly one event", () => {
  test("a confirmed order: placed with its lines, then confirmed with their prices and the total", async () => {
    const laptop = await createProduct(system, { stock: 10, priceMinor: 149_999 });
    const mouse = await createProduct(system, { stock: 10, priceMinor: 2_550 });
    const res = await place({ user_id: "ev-alice", items: [{ product_id: laptop, quantity: 2 }, { product_id: mouse, quantity: 3 }] });
    expect(res.status).toBe(201);
    const order = res.body;

    const [placed, confirmed] = await eventsOfOrder(order.id, 2);
    expectEnvelope(placed!, "orders.v1.order.placed", order.id);
    expectEnvelope(confirmed!, "orders.v1.order.confirmed", order.id);
    const lines = [
      { product_id: laptop, quantity: 2, price: "149999" },
      { product_id: mouse, quantity: 3, price: "2550" },
    ].sort((a, b) => (a.product_id < b.product_id ? -1 : 1));

    // The placing statement inserts the order and its lines in separate
    // CTEs: the event shows the lines all the same.
    expect(placed!.data).toEqual({
      order: {
        id: order.id,
        userId: "ev-alice",
        status: "ORDER_STATUS_PENDING",
        lines: lines.map((l) => ({ productId: l.product_id, quantity: l.quantity })),
        createTime: expect.any(String),
        updateTime: expect.any(String),
      },
    });
    // The settling statement prices the lines in another CTE: the event has the prices.
    expect(confirmed!.data).toEqual({
      order: {
        id: order.id,
        userId: "ev-alice",
        status: "ORDER_STATUS_CONFIRMED",
        lines: lines.map((l) => ({ productId: l.product_id, quantity: l.quantity, unitPriceMinor: l.price, currency: "USD" })),
        totalMinor: String(2 * 149_999 + 3 * 2_550),
        currency: "USD",
        createTime: placed!.data.order.createTime,
        updateTime: expect.any(String),
      },
    });
    expect(sameInstant(placed!.data.order.createTime, order.created_at)).toBe(true);
    expect(sameInstant(confirmed!.data.order.updateTime, order.updated_at)).toBe(true);
    expect(placed!.data.order.createTime).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    expect(placed!.id).not.toBe(confirmed!.id);
  });

  test("short stock: placed, then rejected with the reason; the lines stay unpriced", async () => {
    const scarce = await createProduct(system, { stock: 1 });
    const res = await place({ user_id: "ev-bob", items: [{ product_id: scarce, quantity: 5 }] });
    expect(res.status).toBe(409);
    const order = (await call(`${system.api}/orders/${res.body.order_id}`)).body;

    const events = await eventsOfOrder(order.id, 2);
    expect(types(events)).toEqual(["orders.v1.order.placed", "orders.v1.order.rejected"]);
    expect(events[1]!.data).toEqual({
      order: {
        id: order.id,
        userId: "ev-bob",
        status: "ORDER_STATUS_REJECTED",
        lines: [{ productId: scarce, quantity: 5 }],
        rejectionReason: order.rejection_reason,
        createTime: expect.any(String),
        updateTime: expect.any(String),
      },
    });
    expect(order.rejection_reason).toMatch(/^insufficient stock/);
  });

  test("cancelled from confirmed and fulfilled: one event each, the cancellation naming the status it left", async () => {
    const product = await createProduct(system, { stock: 10, priceMinor: 700 });
    const [a, b] = await Promise.all([1, 2].map(() => place({ user_id: "ev-carol", items: [{ product_id: product, quantity: 1 }] })));
    expect((await call(`${system.api}/orders/${a!.body.id}/cancel`, { method: "POST" })).status).toBe(200);
    expect((await call(`${system.api}/orders/${b!.body.id}/fulfill`, { method: "POST" })).status).toBe(200);
    // Repeating them changes nothing, and records nothing.
    expect((await call(`${system.api}/orders/${a!.body.id}/cancel`, { method: "POST" })).status).toBe(200);
    expect((await call(`${system.api}/orders/${b!.body.id}/fulfill`, { method: "POST" })).status).toBe(200);
    expect((await call(`${system.api}/orders/${b!.body.id}/cancel`, { method: "POST" })).status).toBe(409);

    const cancelled = await eventsOfOrder(a!.body.id, 3);
    const fulfilled = await eventsOfOrder(b!.body.id, 3);
    expect(types(cancelled)).toEqual(["orders.v1.order.placed", "orders.v1.order.confirmed", "orders.v1.order.cancelled"]);
    expect(types(fulfilled)).toEqual(["orders.v1.order.placed", "orders.v1.order.confirmed", "orders.v1.order.fulfilled"]);
    expect(cancelled[2]!.data.previousStatus).toBe("ORDER_STATUS_CONFIRMED");
    expect(cancelled[2]!.data.order).toMatchObject({ status: "ORDER_STATUS_CANCELLED", totalMinor: "700", currency: "USD" });
    expect(fulfilled[2]!.data.previousStatus).toBeUndefined();
    expect(fulfilled[2]!.data.order).toMatchObject({ status: "ORDER_STATUS_FULFILLED", lines: [{ productId: product, quantity: 1, unitPriceMinor: "700", currency: "USD" }] });
  });

  test("cancelled while pending (inventory down): placed, then cancelled from pending", async () => {
    const product = await createProduct(system, { stock: 10 });
    await system.stopInventory();
    let id: string;
    try {
      const res = await place({ user_id: "ev-dan", items: [{ product_id: product, quantity: 1 }] });
      expect(res.status).toBe(503);
      id = res.body.order_id;
      const cancel = await call(`${system.api}/orders/${id}/cancel`, { method: "POST" });
      expect(cancel.body.status).toBe("cancelled");
    } finally {
      await system.startInventory();
    }
    const events = await eventsOfOrder(id, 2);
    expect(types(events)).toEqual(["orders.v1.order.placed", "orders.v1.order.cancelled"]);
    expect(events[1]!.data).toMatchObject({ order: { status: "ORDER_STATUS_CANCELLED" }, previousStatus: "ORDER_STATUS_PENDING" });
    expect(events[1]!.data.order.totalMinor).toBeUndefined();
  });

  test("an operator's SQL records its events too; an update that leaves the status alone records none", async () => {
    const product = await createProduct(system, { stock: 10 });
    const res = await place({ user_id: "ev-erin", items: [{ product_id: product, quantity: 1 }] });
    await eventsOfOrder(res.body.id, 2);
    await db.query("update orders set stock_synced_at = now(), attempts = attempts + 1 where id = $1", [res.body.id]);
    await db.query("update orders set status = 'cancelled', updated_at = now() where id = $1", [res.body.id]);
    const events = await eventsOfOrder(res.body.id, 3);
    expect(events[2]).toMatchObject({ type: "orders.v1.order.cancelled", data: { previousStatus: "ORDER_STATUS_CONFIRMED" } });
  });
});

describe("one statement, one insert", () => {
  /** Runs `work` in a transaction and answers how often the event functions ran in it, with what `work` answered. */
  async function counting<T>(work: (trx: Transaction<Database>) => Promise<T>) {
    return system.app.db.transaction().execute(async (trx) => {
      // Superuser only: the test server's user is one. The counts of the
      // session may hold earlier transactions' calls: the difference is this one's.
      await sql`set local track_functions = 'pl'`.execute(trx);
      const calls = async () => {
        const { rows } = await sql<{ funcname: string; calls: number }>`
          select funcname, calls::int from pg_stat_xact_user_functions where funcname in ('orders_record_events', 'outbox_notify')`.execute(trx);
        return Object.fromEntries(rows.map((r) => [r.funcname, r.calls]));
      };
      const before = await calls();
      const value = await work(trx);
      const after = await calls();
      const ran = Object.fromEntries(Object.entries(after).map(([name, n]) => [name, n - (before[name] ?? 0)]).filter(([, n]) => n !== 0));
      return { value, calls: ran };
    });
  }

  test("a batch of 300 orders of three lines each is placed and confirmed with one insert into the outbox each time, the events complete", async () => {
    const products = Array.from({ length: 3 }, () => randomUUID()).sort();
    const orders = Array.from({ length: 300 }, (_, i) => ({
      id: uuidv7(),
      user_id: `batch-${i}`,
      items: products.map((product_id, k) => ({ product_id, quantity: k + 1 })),
    }));
    const stored = await counting((trx) => storePendingOrders(trx, orders));
    expect(stored.value.every((o) => o !== undefined)).toBe(true);
    expect(stored.calls).toEqual({ orders_record_events: 1, outbox_notify: 1 });

    const settlements: Settlement[] = orders.map((o) => ({
      id: o.id,
      outcome: "confirmed",
      confirmedAt: new Date(),
      answer: { status: 201, body: {} },
      priced: { items: products.map((product_id) => ({ product_id, unit_price_minor: 100 })), total_minor: 600, currency: "EUR" },
    }));
    const settled = await counting((trx) => settleOrders(trx, settlements));
    expect(settled.value.every(Boolean)).toBe(true);
    expect(settled.calls).toEqual({ orders_record_events: 1, outbox_notify: 1 });

    const ids = new Set(orders.map((o) => o.id));
    const events = await eventually(async () => {
      const listed = (await listEvents(system)).events.filter((e) => ids.has(e.subject));
      expect(listed).toHaveLength(600);
      return listed;
    });
    // Each statement's events are listed together, in order id order.
    expect(events.slice(0, 300).map((e) => e.subject)).toEqual(orders.map((o) => o.id));
    expect(events.slice(300).map((e) => e.subject)).toEqual(orders.map((o) => o.id));
    for (const event of events.slice(0, 300)) {
      expect(event.type).toBe("orders.v1.order.placed");
      expect(event.data.order.lines).toEqual(products.map((productId, k) => ({ productId, quantity: k + 1 })));
    }
    for (const event of events.slice(300)) {
      expect(event.type).toBe("orders.v1.order.confirmed");
      expect(event.data.order.lines).toEqual(products.map((productId, k) => ({ productId, quantity: k + 1, unitPriceMinor: "100", currency: "EUR" })));
      expect(event.data.order).toMatchObject({ totalMinor: "600", currency: "EUR" });
    }
    await db.query("update orders set status = 'cancelled', stock_synced_at = now() where user_id like 'batch-%'");
  });

  test("an update of many orders that changes no status inserts nothing and wakes nobody", async () => {
    const { calls, value } = await counting(async (trx) => {
      const { rows } = await sql<{ n: number }>`
        with touched as (update orders set attempts = attempts + 1 where user_id like 'batch-%' returning 1) select count(*)::int as n from touched`.execute(trx);
      const { rows: outbox } = await sql<{ n: number }>`select count(*)::int as n from outbox where txid = pg_current_xact_id()`.execute(trx);
      return { touched: rows[0]!.n, recorded: outbox[0]!.n };
    });
    expect(value).toEqual({ touched: 300, recorded: 0 });
    expect(calls).toEqual({ orders_record_events: 1 });
  });
});

describe("an event exists if and only if its change committed", () => {
  test("a transaction that changes an order and rolls back leaves no event", async () => {
    const product = await createProduct(system, { stock: 10 });
    const res = await place({ user_id: "ev-rollback", items: [{ product_id: product, quantity: 1 }] });
    await eventsOfOrder(res.body.id, 2);
    await db.query("begin");
    await db.query("update orders set status = 'cancelled' where id = $1", [res.body.id]);
    // Recorded by the statement, in its transaction...
    const inside = await db.query("select type from outbox where subject = $1 order by position", [res.body.id]);
    expect(inside.rows.map((r) => r.type)).toEqual(["orders.v1.order.placed", "orders.v1.order.confirmed", "orders.v1.order.cancelled"]);
    await db.query("rollback");
    // ...and gone with it.
    const after = await db.query("select type from outbox where subject = $1 order by position", [res.body.id]);
    expect(after.rows).toHaveLength(2);
    expect(types(await eventsOf(system, res.body.id))).toEqual(["orders.v1.order.placed", "orders.v1.order.confirmed"]);
  });

  test("a batch statement the database refuses records nothing; retried order by order, only the stored orders have events", async () => {
    const steps = directSteps(system.app.db, system.app.inventory);
    const product = randomUUID();
    const good = Array.from({ length: 4 }, (_, i) => ({ id: uuidv7(), user_id: `iso-${i}`, items: [{ product_id: product, quantity: 1 }] }));
    // A user_id longer than the table allows (the API would refuse it first): the batch's insert fails as a whole.
    const bad = { id: uuidv7(), user_id: "x".repeat(200), items: [{ product_id: product, quantity: 1 }] };
    const stored = await steps.store([good[0]!, good[1]!, bad, good[2]!, good[3]!]);
    expect(stored.map((s) => s.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled"]);

    // Settling them, one with a negative total (refused by the table's check).
    const settle = (id: string, total: number): Settlement => ({
      id,
      outcome: "confirmed",
      confirmedAt: new Date(),
      answer: { status: 201, body: {} },
      priced: { items: [{ product_id: product, unit_price_minor: total }], total_minor: total, currency: "USD" },
    });
    const settled = await steps.settle([settle(good[0]!.id, 5), settle(good[1]!.id, -5), settle(good[2]!.id, 5)]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);

    const expected: Record<string, string[]> = {
      [good[0]!.id]: ["orders.v1.order.placed", "orders.v1.order.confirmed"],
      [good[1]!.id]: ["orders.v1.order.placed"],
      [good[2]!.id]: ["orders.v1.order.placed", "orders.v1.order.confirmed"],
      [good[3]!.id]: ["orders.v1.order.placed"],
      [bad.id]: [],
    };
    await eventually(async () => {
      const listed = (await listEvents(system)).events;
      for (const [id, wanted] of Object.entries(expected)) expect(types(listed.filter((e) => e.subject === id)), id).toEqual(wanted);
    });
    const { rows } = await db.query("select subject, type from outbox where subject = any($1) order by position", [Object.keys(expected)]);
    expect(rows).toHaveLength(6);
    await db.query("update orders set status = 'cancelled', stock_synced_at = now() where user_id like 'iso-%'");
  });
});

test("a change that waited for another transaction's change of the same order is listed after it", async () => {
  // Two batches at once: one confirms an order while the other, which has
  // already written (so holds an older transaction id), waits for the row
  // and then cancels the order it finds confirmed.
  const [order] = await storePendingOrders(system.app.db, [{ id: uuidv7(), user_id: "ev-race", items: [{ product_id: randomUUID(), quantity: 1 }] }]);
  const canceller = new pg.Client({ connectionString: system.ordersDatabaseUrl });
  const settler = new pg.Client({ connectionString: system.ordersDatabaseUrl });
  await Promise.all([canceller.connect(), settler.connect()]);
  try {
    await canceller.query("begin");
    const older = (await canceller.query("select pg_current_xact_id()::text as xid")).rows[0].xid;
    await settler.query("begin");
    await settler.query("update orders set status = 'confirmed', total_minor = 0, currency = 'USD' where id = $1", [order!.id]);
    const newer = (await settler.query("select pg_current_xact_id()::text as xid")).rows[0].xid;
    expect(BigInt(older)).toBeLessThan(BigInt(newer));
    const cancelling = canceller.query("update orders set status = 'cancelled' where id = $1 and status in ('pending', 'confirmed')", [order!.id]);
    await eventually(async () => {
      const { rows } = await db.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like 'update orders set status = ''cancelled''%'");
      expect(rows[0].n).toBe(1);
    });
    await settler.query("commit");
    expect((await cancelling).rowCount).toBe(1);
    await canceller.query("commit");
  } finally {
    await Promise.all([canceller.end(), settler.end()]);
  }
  const events = await eventsOfOrder(order!.id, 3);
  expect(types(events)).toEqual(["orders.v1.order.placed", "orders.v1.order.confirmed", "orders.v1.order.cancelled"]);
  expect(events[2]!.data.previousStatus).toBe("ORDER_STATUS_CONFIRMED");
});

describe("GET /api/v1/events", () => {
  test("walking the pages while orders are placed sees each event exactly once, with no gaps, in the outbox's order", async () => {
    const product = await createProduct(system, { stock: 100_000, priceMinor: 10 });
    const { events: before, next: start } = await listEvents(system);
    let placing = true;
    const load = (async () => {
      for (let wave = 0; wave < 6; wave++) {
        await Promise.all(Array.from({ length: 25 }, (_, i) => place({ user_id: `walk-${wave}-${i}`, items: [{ product_id: product, quantity: 1 }] })));
      }
      placing = false;
    })();
    const seen: ListedEvent[] = [];
    let cursor = start;
    let pages = 0;
    // Small pages, as fast as they come, while the orders arrive; then until the last events show.
    while (placing || seen.filter((e) => e.data.order.userId.startsWith("walk-")).length < 300) {
      const res = await call(`${system.api}/events?limit=7&cursor=${encodeURIComponent(cursor)}`);
      expect(res.status).toBe(200);
      expect(typeof res.body.next_cursor).toBe("string");
      seen.push(...res.body.data);
      cursor = res.body.next_cursor;
      pages++;
      if (res.body.data.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await load;
    expect(pages).toBeGreaterThan(300 / 7);
    const ids = seen.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    // Together with what was listed before, exactly the outbox, in its order.
    const { rows } = await db.query<{ id: string }>("select id from outbox order by txid, position");
    expect(rows.map((r) => r.id)).toEqual([...before.map((e) => e.id), ...ids]);
  });

  test("polling with the last next_cursor answers only what was recorded since", async () => {
    const { next } = await listEvents(system);
    const again = await call(`${system.api}/events?cursor=${encodeURIComponent(next)}`);
    expect(again.body).toEqual({ data: [], next_cursor: next });

    const product = await createProduct(system, { stock: 5 });
    const res = await place({ user_id: "ev-poller", items: [{ product_id: product, quantity: 1 }] });
    const newer = await eventually(async () => {
      const page = await call(`${system.api}/events?cursor=${encodeURIComponent(next)}`);
      expect(page.body.data).toHaveLength(2);
      return page.body;
    });
    expect(newer.data.map((e: ListedEvent) => [e.type, e.subject])).toEqual([
      ["orders.v1.order.placed", res.body.id],
      ["orders.v1.order.confirmed", res.body.id],
    ]);
    expect(newer.next_cursor).not.toBe(next);
    expect((await call(`${system.api}/events?cursor=${encodeURIComponent(newer.next_cursor)}`)).body.data).toEqual([]);
  });

  test("filters by type", async () => {
    const all = (await listEvents(system)).events;
    for (const type of ["orders.v1.order.rejected", "orders.v1.order.cancelled"]) {
      const { events } = await listEvents(system, { type, limit: 3 });
      expect(events.length).toBeGreaterThan(0);
      expect(events.every((e) => e.type === type)).toBe(true);
      expect(events.map((e) => e.id)).toEqual(all.filter((e) => e.type === type).map((e) => e.id));
    }
  });

  test("pages by limit, 100 by default", async () => {
    const all = (await listEvents(system)).events;
    expect(all.length).toBeGreaterThan(100);
    const first = await call(`${system.api}/events`);
    expect(first.body.data).toHaveLength(100);
    const two = await call(`${system.api}/events?limit=2`);
    expect(two.body.data.map((e: ListedEvent) => e.id)).toEqual(all.slice(0, 2).map((e) => e.id));
    const next = await call(`${system.api}/events?limit=2&cursor=${encodeURIComponent(two.body.next_cursor)}`);
    expect(next.body.data.map((e: ListedEvent) => e.id)).toEqual(all.slice(2, 4).map((e) => e.id));
  });

  test.each([
    { query: "cursor=bm9wZQ", code: "invalid_cursor", field: undefined },
    { query: `cursor=${Buffer.from("12.x").toString("base64url")}`, code: "invalid_cursor", field: undefined },
    { query: "type=orders.v1.order.shipped", code: "validation_failed", field: "/querystring/type" },
    { query: "type=inventory.v1.stock.reserved", code: "validation_failed", field: "/querystring/type" },
    { query: "limit=0", code: "validation_failed", field: "/querystring/limit" },
    { query: "limit=501", code: "validation_failed", field: "/querystring/limit" },
    { query: "limit=ten", code: "validation_failed", field: "/querystring/limit" },
    { query: "after=x", code: "validation_failed", field: "/querystring" },
  ])("refuses $query with 400 $code", async ({ query, code, field }) => {
    const res = await call(`${system.api}/events?${query}`);
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ code, status: 400 });
    if (field) expect(res.body.errors[0].field).toMatch(new RegExp(`^${field}`));
  });

  test("is staff work: 401 without a token, 403 for a customer, naming the scope", async () => {
    const anonymous = await call(`${system.api}/events`, { headers: { authorization: "" } });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.code).toBe("unauthorized");
    const customer = await call(`${system.api}/events`, { headers: { authorization: await bearer("ev-alice", []) } });
    expect(customer.status).toBe(403);
    expect(customer.body.code).toBe("forbidden");
    expect(customer.headers.get("www-authenticate")).toMatch(/error="insufficient_scope", .*scope="orders:read_all"/);
  });

  test("every event's data is its message in the proto3 JSON mapping: fromJson reads it, and nothing is lost or added", async () => {
    const { events } = await listEvents(system);
    expect(new Set(events.map((e) => e.type))).toEqual(
      new Set(["orders.v1.order.placed", "orders.v1.order.confirmed", "orders.v1.order.rejected", "orders.v1.order.cancelled", "orders.v1.order.fulfilled"]),
    );
    const instants = (value: unknown): unknown =>
      JSON.parse(JSON.stringify(value), (key, v) => (key === "createTime" || key === "updateTime" ? Date.parse(v) : v));
    for (const event of events) {
      expect(isEventType(event.type)).toBe(true);
      const schema = EVENT_TYPES[event.type as keyof typeof EVENT_TYPES];
      const message = fromJson(schema, event.data as never);
      // The canonical JSON of what was read is the event's data (timestamps compared as instants).
      expect(instants(toJson(schema, message)), event.id).toEqual(instants(event.data));
    }
  });
});

describe("readiness", () => {
  test("shows that publishing is off and how many events wait, and how long the oldest has", async () => {
    const res = await call(`${system.root}/readyz`);
    const { rows } = await db.query("select count(*)::int as n, extract(epoch from now() - min(time))::float8 as age from outbox where published_at is null");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: "ready",
      events: { publishing: false, unpublished: expect.any(Number), oldest_unpublished_age_seconds: expect.any(Number) },
    });
    expect(res.body.events.unpublished).toBeLessThanOrEqual(rows[0].n);
    expect(res.body.events.unpublished).toBeGreaterThan(rows[0].n - 20);
    expect(res.body.events.oldest_unpublished_age_seconds).toBeGreaterThan(0);
    expect(res.body.events.oldest_unpublished_age_seconds).toBeLessThanOrEqual(rows[0].age + 1);
  });

  test("never fails because of the events: an outbox that cannot be read leaves the lag out", async () => {
    await db.query("alter table outbox rename to outbox_away");
    try {
      const res = await call(`${system.root}/readyz`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: "ready", events: { publishing: false } });
    } finally {
      await db.query("alter table outbox_away rename to outbox");
    }
  });

  test("shows publishing on when NATS_URL is set", async () => {
    const publishing = await startSystem("events_nats", { env: { RECONCILE_INTERVAL_MS: "0", NATS_URL: "nats://127.0.0.1:4222" } });
    try {
      const res = await call(`${publishing.root}/readyz`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: "ready", events: { publishing: true, unpublished: 0, oldest_unpublished_age_seconds: null } });
    } finally {
      await publishing.close();
    }
  });
});
