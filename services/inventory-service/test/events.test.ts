import { randomUUID } from "node:crypto";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { BadRequestSchema } from "@ecommerce/gen/google/rpc/error_details_pb.ts";
import {
  AdjustmentReason,
  ReservationSchema,
  StockLevelSchema,
  StockMovementSchema,
  type Reservation,
} from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { sql } from "kysely";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  lockStockRow,
  readEvents,
  rpcError,
  startHarness,
  TEST_OPERATOR,
  type Harness,
  type ReadEvent,
} from "./inventory-harness.ts";

// The stock events as a reader of ListEvents sees them: exactly one per
// change, with its payload, whichever way the change is made, and none for
// a change that did not happen.

const RESERVED = "inventory.v1.stock.reserved";
const RELEASED = "inventory.v1.stock.released";
const COMMITTED = "inventory.v1.stock.committed";
const ADJUSTED = "inventory.v1.stock.adjusted";
const LOW = "inventory.v1.stock.low";

let h: Harness;
/** Where the last newEvents() stopped. */
let cursor = "";
beforeAll(async () => {
  h = await startHarness({ reservationTtlSeconds: 600 });
});
afterAll(() => h.close());

/** The events recorded since the last call. */
async function newEvents(): Promise<ReadEvent[]> {
  const { events, next } = await readEvents(h.client, { pageToken: cursor });
  cursor = next;
  return events;
}

/** The types and payloads of the events recorded since the last call. */
async function newPayloads() {
  return (await newEvents()).map(({ type, subject, data }) => ({ type, subject, data }));
}

beforeEach(async () => {
  await newEvents();
});

/** A reservation's lines as its stock.reserved event carries them. */
const linesOf = (r: Reservation | undefined) => (toJson(ReservationSchema, r!) as { lines: unknown[] }).lines;

/** A Timestamp of the JSON mapping as a Date, to the millisecond (the events keep microseconds). */
const ms = (rfc3339: unknown) => new Date(Date.parse(String(rfc3339))).getTime();

describe("an event per change", () => {
  it("records stock.reserved for ReserveStock with the lines, their prices and the expiry", async () => {
    const euro = await h.product({ initialStock: 10, priceMinor: 1250n, currency: "EUR" });
    const free = await h.product({ initialStock: 10, priceMinor: 0n });
    await newEvents();
    const orderId = randomUUID();
    const before = Date.now();
    const { reservation } = await h.client.reserveStock({
      orderId,
      lines: [
        { productId: euro.id, quantity: 3 },
        { productId: free.id, quantity: 1 },
      ],
    });

    const events = await newEvents();
    expect(events).toEqual([
      {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        type: RESERVED,
        source: "/inventory-service",
        subject: orderId,
        time: expect.any(Date),
        publishTime: undefined,
        data: { orderId, lines: linesOf(reservation), expireTime: expect.any(String) },
      },
    ]);
    const [event] = events;
    // Lines in product id order; a price of 0 is left out, as the JSON mapping does.
    expect(linesOf(reservation)).toContainEqual({ productId: free.id, quantity: 1, currency: "USD" });
    expect(linesOf(reservation)).toContainEqual({ productId: euro.id, quantity: 3, unitPriceMinor: "1250", currency: "EUR" });
    expect(ms((event!.data as { expireTime: string }).expireTime)).toBe(timestampDate(reservation!.expireTime!).getTime());
    expect(event!.time.getTime()).toBeGreaterThanOrEqual(before - 1000);
  });

  it("records stock.reserved for each order ReserveOrders reserves, in request order, and nothing for those it refuses", async () => {
    const a = await h.product({ initialStock: 5 });
    const b = await h.product({ initialStock: 5 });
    const existing = randomUUID();
    await h.client.reserveStock({ orderId: existing, lines: [{ productId: a.id, quantity: 1 }] });
    await newEvents();
    const orders = [
      { orderId: randomUUID(), lines: [{ productId: b.id, quantity: 2 }, { productId: a.id, quantity: 1 }] },
      { orderId: randomUUID(), lines: [{ productId: a.id, quantity: 9 }] }, // short
      { orderId: randomUUID(), lines: [{ productId: randomUUID(), quantity: 1 }] }, // unknown product
      { orderId: randomUUID(), lines: [{ productId: a.id, quantity: 0 }] }, // invalid
      { orderId: existing, lines: [{ productId: a.id, quantity: 1 }] }, // a repeat
      { orderId: randomUUID(), lines: [{ productId: a.id, quantity: 3 }] },
      { orderId: randomUUID(), lines: [{ productId: a.id, quantity: 1 }] }, // short now: 5 - 1 - 1 - 3 = 0
    ];
    const { outcomes } = await h.client.reserveOrders({ orders });
    expect(outcomes.map((o) => o.result.case)).toEqual(["reservation", "error", "error", "error", "reservation", "reservation", "error"]);

    const reservationOf = (i: number) => (outcomes[i]?.result.case === "reservation" ? outcomes[i].result.value : undefined);
    expect(await newPayloads()).toEqual([
      { type: RESERVED, subject: orders[0]!.orderId, data: { orderId: orders[0]!.orderId, lines: linesOf(reservationOf(0)), expireTime: expect.any(String) } },
      { type: RESERVED, subject: orders[5]!.orderId, data: { orderId: orders[5]!.orderId, lines: linesOf(reservationOf(5)), expireTime: expect.any(String) } },
    ]);
  });

  it("records stock.released once for ReleaseStock, however often it is repeated", async () => {
    const p = await h.product({ initialStock: 5 });
    const orderId = randomUUID();
    await h.client.reserveStock({ orderId, lines: [{ productId: p.id, quantity: 2 }] });
    await newEvents();
    await h.client.releaseStock({ orderId, reason: "order cancelled" });
    await h.client.releaseStock({ orderId, reason: "order cancelled" });
    await Promise.all([h.client.releaseStock({ orderId }), h.client.releaseStock({ orderId })]);
    expect(await newPayloads()).toEqual([
      { type: RELEASED, subject: orderId, data: { orderId, lines: [{ productId: p.id, quantity: 2 }], status: "RESERVATION_STATUS_RELEASED" } },
    ]);
    // Releasing an order that has no reservation changes nothing, and says so by silence.
    await h.client.releaseStock({ orderId: randomUUID() });
    expect(await newEvents()).toEqual([]);
  });

  it("records stock.committed once for CommitStock, however often it is repeated", async () => {
    const [p, q] = await Promise.all([h.product({ initialStock: 5 }), h.product({ initialStock: 5 })]);
    const orderId = randomUUID();
    await h.client.reserveStock({ orderId, lines: [{ productId: q.id, quantity: 1 }, { productId: p.id, quantity: 2 }] });
    await h.client.confirmReservations({ orderIds: [orderId] });
    await newEvents();
    await h.client.commitStock({ orderId });
    await Promise.all([h.client.commitStock({ orderId }), h.client.commitStock({ orderId })]);
    const lines = [
      { productId: p.id, quantity: 2 },
      { productId: q.id, quantity: 1 },
    ].sort((x, y) => x.productId.localeCompare(y.productId));
    expect(await newPayloads()).toEqual([{ type: COMMITTED, subject: orderId, data: { orderId, lines } }]);
  });

  it("records stock.adjusted for CreateProduct's initial stock, with the stock level after it", async () => {
    const product = await h.product({ initialStock: 12, lowStockThreshold: 3 });
    const [event] = await newEvents();
    expect(event).toMatchObject({ type: ADJUSTED, subject: product.id });
    expect(event!.data).toEqual({
      productId: product.id,
      movement: {
        id: expect.stringMatching(/^\d+$/),
        productId: product.id,
        kind: "initial",
        onHandDelta: 12,
        actor: TEST_OPERATOR,
        createTime: expect.any(String),
      },
      stock: { onHand: 12, available: 12, lowStockThreshold: 3 },
    });
    expect(await newEvents()).toEqual([]);
  });

  it.each([
    ["a restock", AdjustmentReason.RESTOCK, { case: "delta" as const, value: 5 }],
    ["a write-off", AdjustmentReason.WRITE_OFF, { case: "delta" as const, value: -2 }],
    ["a count correction", AdjustmentReason.COUNT_CORRECTION, { case: "setOnHand" as const, value: 20 }],
  ])("records stock.adjusted for %s: the ledger entry and the stock level AdjustStock answers", async (_name, reason, change) => {
    const p = await h.product({ initialStock: 10 });
    await h.client.reserveStock({ orderId: randomUUID(), lines: [{ productId: p.id, quantity: 1 }] });
    await newEvents();
    const { product, movement } = await h.client.adjustStock({ productId: p.id, change, reason, note: "delivery 42" });
    const [event, ...more] = await newPayloads();
    expect(more).toEqual([]);
    // The response's times are in milliseconds, the event's in microseconds.
    const { createTime, ...recorded } = (event?.data as { movement: { createTime: string } }).movement;
    const { createTime: answered, ...answer } = toJson(StockMovementSchema, movement!) as { createTime: string };
    expect(ms(createTime)).toBe(ms(answered));
    expect(recorded).toEqual(answer);
    expect(event).toEqual({
      type: ADJUSTED,
      subject: p.id,
      data: { productId: p.id, movement: expect.any(Object), stock: toJson(StockLevelSchema, product!.stock!) },
    });
  });
});

describe("stock.low", () => {
  const lowOf = async (productId: string) => (await newEvents()).filter((e) => e.type === LOW && e.subject === productId);

  it("is recorded once when available stock falls below the threshold, and again only after it was back at or above it", async () => {
    const p = await h.product({ initialStock: 10, lowStockThreshold: 5 });
    expect(await lowOf(p.id)).toEqual([]);
    const reserve = async (quantity: number) => (await h.client.reserveStock({ orderId: randomUUID(), lines: [{ productId: p.id, quantity }] })).reservation!;

    const first = await reserve(5); // 5 available: not below
    expect(await lowOf(p.id)).toEqual([]);
    const second = await reserve(2); // 3: below
    expect((await lowOf(p.id)).map((e) => e.data)).toEqual([
      { productId: p.id, sku: p.sku, stock: { onHand: 10, reserved: 7, available: 3, lowStockThreshold: 5 }, threshold: 5 },
    ]);
    await reserve(1); // 2: still below
    await h.client.adjustStock({ productId: p.id, change: { case: "delta", value: -1 }, reason: AdjustmentReason.WRITE_OFF }); // 1
    await h.client.releaseStock({ orderId: second.orderId }); // 3
    await h.client.commitStock({ orderId: first.orderId }); // on hand 4, reserved 1: 3
    expect(await lowOf(p.id)).toEqual([]);

    await h.client.adjustStock({ productId: p.id, change: { case: "delta", value: 2 }, reason: AdjustmentReason.RESTOCK }); // 5: at it
    expect(await lowOf(p.id)).toEqual([]);
    await h.client.reserveOrders({ orders: [{ orderId: randomUUID(), lines: [{ productId: p.id, quantity: 1 }] }] }); // 4: below again
    expect((await lowOf(p.id)).map((e) => e.data)).toEqual([
      { productId: p.id, sku: p.sku, stock: { onHand: 6, reserved: 2, available: 4, lowStockThreshold: 5 }, threshold: 5 },
    ]);
  });

  it("is recorded when a product is created below its threshold, after its stock.adjusted; not at or above it", async () => {
    const below = await h.product({ initialStock: 2, lowStockThreshold: 5 });
    expect((await newPayloads()).map((e) => [e.type, e.subject])).toEqual([
      [ADJUSTED, below.id],
      [LOW, below.id],
    ]);
    const at = await h.product({ initialStock: 5, lowStockThreshold: 5 });
    expect((await newPayloads()).map((e) => [e.type, e.subject])).toEqual([[ADJUSTED, at.id]]);
    await h.client.reserveStock({ orderId: randomUUID(), lines: [{ productId: at.id, quantity: 1 }] });
    expect((await newPayloads()).map((e) => e.type)).toEqual([RESERVED, LOW]);
  });

  it("is never recorded for a threshold of 0", async () => {
    const p = await h.product({ initialStock: 3 });
    expect(p.stock?.lowStockThreshold).toBe(0);
    await h.client.reserveStock({ orderId: randomUUID(), lines: [{ productId: p.id, quantity: 3 }] });
    await h.client.adjustStock({ productId: p.id, change: { case: "setOnHand", value: 3 }, reason: AdjustmentReason.COUNT_CORRECTION });
    expect((await newEvents()).filter((e) => e.type === LOW)).toEqual([]);
  });

  it("is recorded for each product of a ReserveOrders batch that turns low, once", async () => {
    const [p, q, r] = await Promise.all([10, 10, 10].map((initialStock) => h.product({ initialStock, lowStockThreshold: 4 })));
    await newEvents();
    const order = (productId: string, quantity: number) => ({ orderId: randomUUID(), lines: [{ productId, quantity }] });
    // p: 7 orders of 1 leave 3, low; q: 3 orders of 2 leave 4, not low; r: one of 10 leaves 0, low.
    const orders = [...Array.from({ length: 7 }, () => order(p!.id, 1)), ...Array.from({ length: 3 }, () => order(q!.id, 2)), order(r!.id, 10)];
    const { outcomes } = await h.client.reserveOrders({ orders });
    expect(outcomes.every((o) => o.result.case === "reservation")).toBe(true);
    const low = (await newEvents()).filter((e) => e.type === LOW);
    expect(low.map((e) => e.subject).sort()).toEqual([p!.id, r!.id].sort());
  });

  it("is the only type ListEvents gives when asked for it", async () => {
    await h.product({ initialStock: 0, lowStockThreshold: 1 });
    const { events } = await readEvents(h.client, { type: LOW });
    expect(events.length).toBeGreaterThan(0);
    expect(new Set(events.map((e) => e.type))).toEqual(new Set([LOW]));
  });
});

describe("every way of changing stock records its events", () => {
  it("sees the lines and expiry written by the same statement in reserve_stock(), which replicas of the previous release call", async () => {
    const p = await h.product({ initialStock: 5, priceMinor: 700n });
    await newEvents();
    const orderId = randomUUID();
    await sql`SELECT * FROM reserve_stock(${orderId}::uuid, ${[p.id]}::uuid[], ${[2]}::int[], 60, 0)`.execute(h.server.db);
    const { reservation } = await h.client.reserveStock({ orderId, lines: [{ productId: p.id, quantity: 2 }] });
    expect(await newPayloads()).toEqual([
      {
        type: RESERVED,
        subject: orderId,
        data: { orderId, lines: [{ productId: p.id, quantity: 2, unitPriceMinor: "700", currency: "USD" }], expireTime: expect.any(String) },
      },
    ]);
    expect(linesOf(reservation)).toEqual([{ productId: p.id, quantity: 2, unitPriceMinor: "700", currency: "USD" }]);
  });

  it("records an operator's SQL change of stock, made with its ledger row, as any other", async () => {
    const p = await h.product({ initialStock: 5 });
    await newEvents();
    await sql`
      WITH level AS (UPDATE stock_levels SET on_hand = on_hand + 7 WHERE product_id = ${p.id})
      INSERT INTO stock_movements (product_id, kind, on_hand_delta, reserved_delta, note, actor)
      VALUES (${p.id}, 'restock', 7, 0, 'pallet found', 'dba')
    `.execute(h.server.db);
    expect(await newPayloads()).toEqual([
      {
        type: ADJUSTED,
        subject: p.id,
        data: {
          productId: p.id,
          movement: expect.objectContaining({ kind: "restock", onHandDelta: 7, note: "pallet found", actor: "dba" }),
          stock: { onHand: 12, available: 12 },
        },
      },
    ]);
  });

  it("gives each ledger row of one statement the stock level after that row", async () => {
    const p = await h.product({ initialStock: 5 });
    await newEvents();
    await sql`
      WITH level AS (UPDATE stock_levels SET on_hand = on_hand + 1 WHERE product_id = ${p.id})
      INSERT INTO stock_movements (product_id, kind, on_hand_delta, reserved_delta)
      VALUES (${p.id}, 'restock', 4, 0), (${p.id}, 'write_off', -3, 0)
    `.execute(h.server.db);
    expect((await newEvents()).map((e) => (e.data as { stock: unknown }).stock)).toEqual([
      { onHand: 9, available: 9 },
      { onHand: 6, available: 6 },
    ]);
  });
});

describe("no event for a change that did not happen", () => {
  it("records nothing for a transaction that rolls back, nor for a statement that fails", async () => {
    const p = await h.product({ initialStock: 5, lowStockThreshold: 10 });
    await newEvents();
    const restock = sql`
      WITH level AS (UPDATE stock_levels SET on_hand = on_hand + 1 WHERE product_id = ${p.id})
      INSERT INTO stock_movements (product_id, kind, on_hand_delta, reserved_delta) VALUES (${p.id}, 'restock', 1, 0)
    `;
    const rolledBack = h.server.db.transaction().execute(async (tx) => {
      await restock.execute(tx);
      throw new Error("changed our mind");
    });
    await expect(rolledBack).rejects.toThrow("changed our mind");
    // The ledger row is written, then the stock update breaks its CHECK: the statement fails as a whole.
    const failing = sql`
      WITH ledger AS (
        INSERT INTO stock_movements (product_id, kind, on_hand_delta, reserved_delta) VALUES (${p.id}, 'write_off', -9, 0)
      )
      UPDATE stock_levels SET on_hand = on_hand - 9 WHERE product_id = ${p.id}
    `;
    await expect(failing.execute(h.server.db)).rejects.toThrow(/stock_levels_reserved_within_on_hand/);
    // In a transaction that commits, the part rolled back to a savepoint leaves nothing; the rest its event.
    await h.server.db.transaction().execute(async (tx) => {
      await sql`SAVEPOINT before_restock`.execute(tx);
      await restock.execute(tx);
      await sql`ROLLBACK TO SAVEPOINT before_restock`.execute(tx);
      await sql`
        WITH level AS (UPDATE stock_levels SET on_hand = on_hand + 2 WHERE product_id = ${p.id})
        INSERT INTO stock_movements (product_id, kind, on_hand_delta, reserved_delta) VALUES (${p.id}, 'restock', 2, 0)
      `.execute(tx);
    });
    expect((await newEvents()).map((e) => [e.type, (e.data as { stock: unknown }).stock])).toEqual([
      [ADJUSTED, { onHand: 7, available: 7, lowStockThreshold: 10 }],
    ]);
  });

  it("records nothing for refused calls: short stock, stock below reserved, a deadline passed while waiting for a lock", async () => {
    const p = await h.product({ initialStock: 5 });
    await h.client.reserveStock({ orderId: randomUUID(), lines: [{ productId: p.id, quantity: 2 }] });
    await newEvents();
    expect((await rpcError(h.client.reserveStock({ orderId: randomUUID(), lines: [{ productId: p.id, quantity: 9 }] }))).code).toBe(
      Code.FailedPrecondition,
    );
    expect(
      (await rpcError(h.client.adjustStock({ productId: p.id, change: { case: "setOnHand", value: 1 }, reason: AdjustmentReason.COUNT_CORRECTION }))).code,
    ).toBe(Code.FailedPrecondition);
    const unlock = await lockStockRow(h.server, p.id);
    const late = randomUUID();
    const timedOut = await rpcError(h.client.reserveOrders({ orders: [{ orderId: late, lines: [{ productId: p.id, quantity: 1 }] }] }, { timeoutMs: 200 }));
    expect(timedOut.code).toBe(Code.DeadlineExceeded);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await unlock();
    expect(await newEvents()).toEqual([]);
  });
});

describe("ListEvents", () => {
  it("returns, with the last page's token, nothing until more is recorded, then only that", async () => {
    const { next } = await readEvents(h.client);
    const again = await h.client.listEvents({ pageToken: next });
    expect(again).toMatchObject({ events: [], nextPageToken: next });
    const p = await h.product({ initialStock: 1 });
    const later = await h.client.listEvents({ pageToken: next });
    expect(later.events.map((e) => [e.type, e.subject])).toEqual([[ADJUSTED, p.id]]);
    expect(later.nextPageToken).not.toBe(next);
  });

  it("pages 100 events by default, and as many as asked up to 500", async () => {
    const p = await h.product({ initialStock: 1000 });
    await newEvents();
    const orders = Array.from({ length: 120 }, () => ({ orderId: randomUUID(), lines: [{ productId: p.id, quantity: 1 }] }));
    await h.client.reserveOrders({ orders });
    const first = await h.client.listEvents({ pageToken: cursor });
    expect(first.events).toHaveLength(100);
    const rest = await h.client.listEvents({ pageToken: first.nextPageToken, pageSize: 500 });
    expect(rest.events).toHaveLength(20);
    expect([...first.events, ...rest.events].map((e) => e.subject)).toEqual(orders.map((o) => o.orderId));
  });

  const refused = async (request: Parameters<Harness["client"]["listEvents"]>[0]) => {
    const error = await rpcError(h.client.listEvents(request));
    return { code: error.code, message: error.rawMessage, fields: error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field)) };
  };

  it.each([-1, 501])("refuses a page size of %i", async (pageSize) => {
    expect(await refused({ pageSize })).toEqual({
      code: Code.InvalidArgument,
      message: `page_size must be from 1 to 500, got ${pageSize}`,
      fields: ["page_size"],
    });
  });

  it.each([
    ["not base64url", "not a token!"],
    ["a token of another listing", Buffer.from(JSON.stringify({ after: "LAPTOP" })).toString("base64url")],
    ["numbers past xid8 and bigint", Buffer.from("99999999999999999999.9999999999999999999").toString("base64url")],
  ])("refuses a page token that is %s", async (_name, pageToken) => {
    expect(await refused({ pageToken })).toEqual({
      code: Code.InvalidArgument,
      message: "page_token is not a page token returned by ListEvents",
      fields: ["page_token"],
    });
  });

  it("refuses a page token longer than any it gives, without decoding it", async () => {
    expect(await refused({ pageToken: "A".repeat(10_000) })).toMatchObject({
      code: Code.InvalidArgument,
      message: "page_token is not a page token returned by ListEvents (at most 64 characters, got 10000)",
    });
  });

  it.each(["orders.v1.order.placed", "inventory.v1.stock.vanished", "stock.low"])("refuses the type %s, naming the types there are", async (type) => {
    expect(await refused({ type })).toEqual({
      code: Code.InvalidArgument,
      message:
        `type must be empty (every type) or one of inventory.v1.stock.reserved, inventory.v1.stock.released, ` +
        `inventory.v1.stock.committed, inventory.v1.stock.adjusted, inventory.v1.stock.low, got "${type}"`,
      fields: ["type"],
    });
  });
});

describe("expiry", () => {
  let expiring: Harness;
  beforeAll(async () => {
    expiring = await startHarness({ reservationTtlSeconds: 1, sweepIntervalMs: 50 });
  });
  afterAll(() => expiring.close());

  it("records stock.released with RESERVATION_STATUS_EXPIRED when the sweeper expires a reservation, once", async () => {
    const p = await expiring.product({ initialStock: 5 });
    const orderId = randomUUID();
    await expiring.client.reserveStock({ orderId, lines: [{ productId: p.id, quantity: 3 }] });
    await vi.waitFor(async () => expect((await expiring.stockOf(p.id)).reserved).toBe(0), { timeout: 5000, interval: 50 });
    await expiring.client.releaseStock({ orderId });
    const { events } = await readEvents(expiring.client);
    expect(events.filter((e) => e.subject === orderId).map(({ type, data }) => ({ type, data }))).toEqual([
      { type: RESERVED, data: expect.objectContaining({ orderId }) },
      { type: RELEASED, data: { orderId, lines: [{ productId: p.id, quantity: 3 }], status: "RESERVATION_STATUS_EXPIRED" } },
    ]);
  });
});
