import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { BadRequestSchema } from "@ecommerce/gen/google/rpc/error_details_pb.ts";
import { InsufficientStockSchema, ReservationStatus } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError, startHarness, stockInconsistencies, type Harness } from "./inventory-harness.ts";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ reservationTtlSeconds: 600 });
});
afterAll(() => h.close());

describe("ReserveStock", () => {
  it("reserves every line with the product's current price and an expiry time", async () => {
    const laptop = await h.product({ priceMinor: 149999n, currency: "USD", initialStock: 5 });
    const mouse = await h.product({ priceMinor: 2500n, currency: "EUR", initialStock: 5 });
    const orderId = randomUUID();
    const before = Date.now();
    const { reservation } = await h.client.reserveStock({
      orderId,
      lines: [
        { productId: laptop.id, quantity: 2 },
        { productId: mouse.id, quantity: 3 },
      ],
    });
    expect(reservation?.orderId).toBe(orderId);
    expect(reservation?.status).toBe(ReservationStatus.RESERVED);
    expect(reservation?.lines.map((l) => [l.productId, l.quantity, l.unitPriceMinor, l.currency]).sort()).toEqual(
      [
        [laptop.id, 2, 149999n, "USD"],
        [mouse.id, 3, 2500n, "EUR"],
      ].sort(),
    );
    const expiresInMs = Number(reservation!.expireTime!.seconds) * 1000 - before;
    expect(expiresInMs).toBeGreaterThan(590_000);
    expect(expiresInMs).toBeLessThan(610_000);
    expect(await h.stockOf(laptop.id)).toMatchObject({ onHand: 5, reserved: 2, available: 3 });
    expect(await h.stockOf(mouse.id)).toMatchObject({ onHand: 5, reserved: 3, available: 2 });
  });

  it("reserves nothing and names every short line when any line is short", async () => {
    const a = await h.product({ initialStock: 5 });
    const b = await h.product({ initialStock: 1 });
    const c = await h.product({ initialStock: 0 });
    const err = await rpcError(
      h.client.reserveStock({
        orderId: randomUUID(),
        lines: [
          { productId: a.id, quantity: 5 },
          { productId: b.id, quantity: 2 },
          { productId: c.id, quantity: 1 },
        ],
      }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    const [detail] = err.findDetails(InsufficientStockSchema);
    expect(detail?.lines.map((l) => ({ productId: l.productId, requested: l.requested, available: l.available }))).toEqual([
      { productId: b.id, requested: 2, available: 1 },
      { productId: c.id, requested: 1, available: 0 },
    ]);
    expect(err.findDetails(BadRequestSchema)).toEqual([]);
    expect(err.rawMessage).toContain(b.id);
    expect(await h.stockOf(a.id)).toMatchObject({ reserved: 0, available: 5 });
  });

  it("answers NOT_FOUND naming an unknown product, reserving nothing", async () => {
    const known = await h.product();
    const unknown = randomUUID();
    const orderId = randomUUID();
    const err = await rpcError(
      h.client.reserveStock({
        orderId,
        lines: [
          { productId: known.id, quantity: 1 },
          { productId: unknown, quantity: 1 },
        ],
      }),
    );
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe(`product ${unknown} not found`);
    expect(await h.stockOf(known.id)).toMatchObject({ reserved: 0 });
    // The failed attempt left no reservation behind: the order can try again.
    const retry = await h.client.reserveStock({ orderId, lines: [{ productId: known.id, quantity: 1 }] });
    expect(retry.reservation?.status).toBe(ReservationStatus.RESERVED);
  });

  it("returns the same reservation when called again with the same lines in any order", async () => {
    const a = await h.product();
    const b = await h.product();
    const orderId = randomUUID();
    const first = await h.client.reserveStock({
      orderId,
      lines: [
        { productId: a.id, quantity: 1 },
        { productId: b.id, quantity: 2 },
      ],
    });
    const again = await h.client.reserveStock({
      orderId,
      lines: [
        { productId: b.id, quantity: 2 },
        { productId: a.id, quantity: 1 },
      ],
    });
    expect(again.reservation).toEqual(first.reservation);
    expect(await h.stockOf(a.id)).toMatchObject({ reserved: 1 });
    expect(await h.stockOf(b.id)).toMatchObject({ reserved: 2 });
  });

  it("refuses the same order id with different lines as ALREADY_EXISTS", async () => {
    const a = await h.product();
    const orderId = randomUUID();
    await h.client.reserveStock({ orderId, lines: [{ productId: a.id, quantity: 1 }] });
    const err = await rpcError(h.client.reserveStock({ orderId, lines: [{ productId: a.id, quantity: 2 }] }));
    expect(err.code).toBe(Code.AlreadyExists);
    expect(await h.stockOf(a.id)).toMatchObject({ reserved: 1 });
  });

  it("refuses to reserve again for an order whose reservation was released", async () => {
    const a = await h.product();
    const orderId = randomUUID();
    const lines = [{ productId: a.id, quantity: 1 }];
    await h.client.reserveStock({ orderId, lines });
    await h.client.releaseStock({ orderId });
    const err = await rpcError(h.client.reserveStock({ orderId, lines }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe(`the reservation for order ${orderId} is released`);
  });

  it.each([
    ["a malformed order id", { orderId: "42", lines: [{ productId: randomUUID(), quantity: 1 }] }, "order_id must be a UUID"],
    ["no lines", { orderId: randomUUID(), lines: [] }, "lines must have at least one line"],
    [
      "a zero quantity",
      { orderId: randomUUID(), lines: [{ productId: randomUUID(), quantity: 1 }, { productId: randomUUID(), quantity: 1 }, { productId: randomUUID(), quantity: 0 }] },
      "lines[2].quantity must be at least 1",
    ],
    ["a negative quantity", { orderId: randomUUID(), lines: [{ productId: randomUUID(), quantity: -3 }] }, "lines[0].quantity must be at least 1"],
    ["an absurd quantity", { orderId: randomUUID(), lines: [{ productId: randomUUID(), quantity: 2_000_000_000 }] }, "lines[0].quantity must be at most 1000000"],
    ["a malformed product id", { orderId: randomUUID(), lines: [{ productId: "laptop", quantity: 1 }] }, 'lines[0].product_id must be a UUID, got "laptop"'],
    [
      "a product twice",
      { orderId: randomUUID(), lines: [{ productId: "00000000-0000-4000-8000-000000000001", quantity: 1 }, { productId: "00000000-0000-4000-8000-000000000001", quantity: 2 }] },
      "lines[1].product_id repeats the product of lines[0]",
    ],
    [
      "more than 100 lines",
      { orderId: randomUUID(), lines: Array.from({ length: 101 }, () => ({ productId: randomUUID(), quantity: 1 })) },
      "lines must have at most 100 lines, got 101",
    ],
  ])("refuses %s as INVALID_ARGUMENT naming the field", async (_name, req, message) => {
    const err = await rpcError(h.client.reserveStock(req));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain(message);
    // The message is the google.rpc.BadRequest detail in words: one violation per bad field.
    const [badRequest] = err.findDetails(BadRequestSchema);
    expect(badRequest?.fieldViolations.map((v) => `${v.field} ${v.description}`).join("; ")).toBe(err.rawMessage);
  });
});

describe("ReleaseStock", () => {
  it("gives the stock back and is harmless to repeat", async () => {
    const a = await h.product({ initialStock: 4 });
    const orderId = randomUUID();
    await h.client.reserveStock({ orderId, lines: [{ productId: a.id, quantity: 3 }] });
    const first = await h.client.releaseStock({ orderId, reason: "order cancelled" });
    expect(first.reservation?.status).toBe(ReservationStatus.RELEASED);
    expect(first.reservation?.expireTime).toBeUndefined();
    expect(await h.stockOf(a.id)).toMatchObject({ onHand: 4, reserved: 0, available: 4 });
    const second = await h.client.releaseStock({ orderId });
    expect(second.reservation?.status).toBe(ReservationStatus.RELEASED);
    expect(await h.stockOf(a.id)).toMatchObject({ onHand: 4, reserved: 0 });
  });

  it("answers OK without a reservation for an unknown order", async () => {
    const res = await h.client.releaseStock({ orderId: randomUUID() });
    expect(res.reservation).toBeUndefined();
  });

  it("refuses to release a committed reservation", async () => {
    const a = await h.product();
    const orderId = randomUUID();
    await h.client.reserveStock({ orderId, lines: [{ productId: a.id, quantity: 1 }] });
    await h.client.commitStock({ orderId });
    const err = await rpcError(h.client.releaseStock({ orderId }));
    expect(err.code).toBe(Code.FailedPrecondition);
  });
});

describe("CommitStock", () => {
  it("turns reserved stock into sold stock once, however often it is called", async () => {
    const a = await h.product({ initialStock: 10 });
    const orderId = randomUUID();
    await h.client.reserveStock({ orderId, lines: [{ productId: a.id, quantity: 4 }] });
    const first = await h.client.commitStock({ orderId });
    expect(first.reservation?.status).toBe(ReservationStatus.COMMITTED);
    const second = await h.client.commitStock({ orderId });
    expect(second.reservation?.status).toBe(ReservationStatus.COMMITTED);
    expect(await h.stockOf(a.id)).toMatchObject({ onHand: 6, reserved: 0, available: 6 });
  });

  it("answers NOT_FOUND for an order without a reservation", async () => {
    const err = await rpcError(h.client.commitStock({ orderId: randomUUID() }));
    expect(err.code).toBe(Code.NotFound);
  });

  it("refuses a released reservation as FAILED_PRECONDITION", async () => {
    const a = await h.product();
    const orderId = randomUUID();
    await h.client.reserveStock({ orderId, lines: [{ productId: a.id, quantity: 1 }] });
    await h.client.releaseStock({ orderId });
    const err = await rpcError(h.client.commitStock({ orderId }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(await h.stockOf(a.id)).toMatchObject({ onHand: 10, reserved: 0 });
  });

  it("refuses a malformed order id", async () => {
    const err = await rpcError(h.client.commitStock({ orderId: "" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("order_id is required");
  });
});

describe("ConfirmReservations", () => {
  it("confirms reserved orders so they no longer expire, and reports the rest as missing", async () => {
    const a = await h.product();
    const [reserved, confirmedBefore, released, unknown] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    for (const orderId of [reserved, confirmedBefore, released]) {
      await h.client.reserveStock({ orderId, lines: [{ productId: a.id, quantity: 1 }] });
    }
    await h.client.confirmReservations({ orderIds: [confirmedBefore] });
    await h.client.releaseStock({ orderId: released });

    const res = await h.client.confirmReservations({ orderIds: [reserved, confirmedBefore, released, unknown] });
    expect(res.confirmedOrderIds).toEqual([reserved, confirmedBefore]);
    expect(res.missingOrderIds).toEqual([released, unknown]);

    const replay = await h.client.reserveStock({ orderId: reserved, lines: [{ productId: a.id, quantity: 1 }] });
    expect(replay.reservation?.status).toBe(ReservationStatus.CONFIRMED);
    expect(replay.reservation?.expireTime).toBeUndefined();
  });

  it("refuses more than 1000 ids and malformed ids", async () => {
    const tooMany = await rpcError(
      h.client.confirmReservations({ orderIds: Array.from({ length: 1001 }, () => randomUUID()) }),
    );
    expect(tooMany.code).toBe(Code.InvalidArgument);
    const malformed = await rpcError(h.client.confirmReservations({ orderIds: [randomUUID(), "nope"] }));
    expect(malformed.rawMessage).toContain("order_ids[1] must be a UUID");
  });
});

describe("CheckStock", () => {
  it("tells availability per line in request order and reserves nothing", async () => {
    const a = await h.product({ initialStock: 3 });
    const b = await h.product({ initialStock: 10 });
    const res = await h.client.checkStock({
      lines: [
        { productId: b.id, quantity: 10 },
        { productId: a.id, quantity: 4 },
      ],
    });
    expect(res.allAvailable).toBe(false);
    expect(res.lines.map((l) => [l.productId, l.requested, l.available, l.isAvailable])).toEqual([
      [b.id, 10, 10, true],
      [a.id, 4, 3, false],
    ]);
    expect(await h.stockOf(a.id)).toMatchObject({ reserved: 0 });
  });

  it("answers NOT_FOUND for an unknown product", async () => {
    const err = await rpcError(h.client.checkStock({ lines: [{ productId: randomUUID(), quantity: 1 }] }));
    expect(err.code).toBe(Code.NotFound);
  });
});

it("keeps the ledger, the live reservations and the stock levels in agreement", async () => {
  expect(await stockInconsistencies(h.server)).toEqual([]);
});
