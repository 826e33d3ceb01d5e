import { randomUUID } from "node:crypto";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { BadRequestSchema } from "@ecommerce/gen/google/rpc/error_details_pb.ts";
import {
  InsufficientStockSchema,
  ReservationStatus,
  type ReserveOutcome,
} from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockStockRow, rpcError, startHarness, stockInconsistencies, type Harness } from "./inventory-harness.ts";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ reservationTtlSeconds: 600 });
});
afterAll(() => h.close());

/** An outcome's refusal as a client reads it: code, message and typed details. */
function refusal(outcome: ReserveOutcome | undefined) {
  if (outcome?.result.case !== "error") throw new Error(`expected a refusal, got ${outcome?.result.case}`);
  const status = outcome.result.value;
  return {
    code: status.code as Code,
    message: status.message,
    shortLines: status.details
      .flatMap((d) => anyUnpack(d, InsufficientStockSchema)?.lines ?? [])
      .map((l) => ({ productId: l.productId, requested: l.requested, available: l.available })),
    violations: status.details
      .flatMap((d) => anyUnpack(d, BadRequestSchema)?.fieldViolations ?? [])
      .map((v) => `${v.field} ${v.description}`),
  };
}

function reservationOf(outcome: ReserveOutcome | undefined) {
  if (outcome?.result.case !== "reservation") throw new Error(`expected a reservation, got ${outcome?.result.case}`);
  return outcome.result.value;
}

describe("ReserveOrders", () => {
  it("gives every order of a mixed batch its own outcome, as ReserveStock would", async () => {
    const a = await h.product({ initialStock: 10, priceMinor: 1250n });
    const scarce = await h.product({ initialStock: 1 });
    const [repeated, conflicting, released] = [randomUUID(), randomUUID(), randomUUID()];
    const first = await h.client.reserveStock({ orderId: repeated, lines: [{ productId: a.id, quantity: 1 }] });
    await h.client.reserveStock({ orderId: conflicting, lines: [{ productId: a.id, quantity: 1 }] });
    await h.client.reserveStock({ orderId: released, lines: [{ productId: a.id, quantity: 1 }] });
    await h.client.releaseStock({ orderId: released });
    const unknownProduct = randomUUID();
    const orders = [
      { orderId: randomUUID(), lines: [{ productId: a.id, quantity: 2 }] },
      { orderId: randomUUID(), lines: [{ productId: a.id, quantity: 1 }, { productId: scarce.id, quantity: 2 }] },
      { orderId: randomUUID(), lines: [{ productId: a.id, quantity: 1 }, { productId: unknownProduct, quantity: 1 }] },
      { orderId: randomUUID(), lines: [{ productId: a.id, quantity: 0 }] },
      { orderId: repeated, lines: [{ productId: a.id, quantity: 1 }] },
      { orderId: conflicting, lines: [{ productId: a.id, quantity: 3 }] },
      { orderId: released, lines: [{ productId: a.id, quantity: 1 }] },
      { orderId: "not-a-uuid", lines: [{ productId: a.id, quantity: 1 }] },
    ];
    const { outcomes } = await h.client.reserveOrders({ orders });
    expect(outcomes.map((o) => o.orderId)).toEqual(orders.map((o) => o.orderId));

    const made = reservationOf(outcomes[0]);
    expect(made.status).toBe(ReservationStatus.RESERVED);
    expect(made.lines.map((l) => [l.productId, l.quantity, l.unitPriceMinor, l.currency])).toEqual([[a.id, 2, 1250n, "USD"]]);
    expect(made.expireTime).toBeDefined();

    expect(refusal(outcomes[1])).toMatchObject({
      code: Code.FailedPrecondition,
      shortLines: [{ productId: scarce.id, requested: 2, available: 1 }],
    });
    expect(refusal(outcomes[2])).toMatchObject({ code: Code.NotFound, message: `product ${unknownProduct} not found` });
    expect(refusal(outcomes[3])).toMatchObject({
      code: Code.InvalidArgument,
      message: "lines[0].quantity must be at least 1",
      violations: ["lines[0].quantity must be at least 1"],
    });
    expect(reservationOf(outcomes[4])).toEqual(first.reservation);
    expect(refusal(outcomes[5])).toMatchObject({ code: Code.AlreadyExists });
    expect(refusal(outcomes[6])).toMatchObject({
      code: Code.FailedPrecondition,
      message: `the reservation for order ${released} is released`,
    });
    expect(refusal(outcomes[7]).code).toBe(Code.InvalidArgument);

    // Only the first order took stock: 1 + 1 before, 2 now.
    expect(await h.stockOf(a.id)).toMatchObject({ onHand: 10, reserved: 4 });
    expect(await h.stockOf(scarce.id)).toMatchObject({ reserved: 0 });
    expect(await stockInconsistencies(h.server)).toEqual([]);
  });

  it("hands the last units out in arrival order", async () => {
    const p = await h.product({ initialStock: 5 });
    const orders = [3, 3, 2].map((quantity) => ({ orderId: randomUUID(), lines: [{ productId: p.id, quantity }] }));
    const { outcomes } = await h.client.reserveOrders({ orders });
    expect(reservationOf(outcomes[0]).lines[0]?.quantity).toBe(3);
    expect(refusal(outcomes[1])).toMatchObject({
      code: Code.FailedPrecondition,
      shortLines: [{ productId: p.id, requested: 3, available: 2 }],
    });
    expect(reservationOf(outcomes[2]).lines[0]?.quantity).toBe(2);
    expect(await h.stockOf(p.id)).toMatchObject({ onHand: 5, reserved: 5, available: 0 });
  });

  it("never lets a short order fail its neighbours, and keeps stock, reservations and ledger in agreement", async () => {
    const products = await Promise.all(Array.from({ length: 3 }, () => h.product({ initialStock: 40 })));
    const ids = products.map((p) => p.id);
    // Every third order wants more than there is; the rest take 1 or 2 of two products.
    const orders = Array.from({ length: 30 }, (_, i) => ({
      orderId: randomUUID(),
      lines:
        i % 3 === 2
          ? [{ productId: ids[i % 3]!, quantity: 1 }, { productId: ids[(i + 1) % 3]!, quantity: 41 }]
          : [{ productId: ids[i % 3]!, quantity: 1 + (i % 2) }, { productId: ids[(i + 1) % 3]!, quantity: 1 }],
    }));
    const { outcomes } = await h.client.reserveOrders({ orders });
    outcomes.forEach((o, i) => expect(o.result.case).toBe(i % 3 === 2 ? "error" : "reservation"));
    const reserved = new Map<string, number>();
    orders.forEach((o, i) => {
      if (i % 3 !== 2) o.lines.forEach((l) => reserved.set(l.productId, (reserved.get(l.productId) ?? 0) + l.quantity));
    });
    for (const id of ids) expect((await h.stockOf(id)).reserved).toBe(reserved.get(id));
    expect(await stockInconsistencies(h.server)).toEqual([]);
  });

  it.each([
    // The second then sees x as available (7 of 10) and y, behind it, as short
    // (4 of 5), unless it learns that x was its twin's.
    ["the lone order's call", true],
    // The second then finds x short (2 of 10 left) while it is in fact reserved.
    ["the call with a neighbour", false],
  ])("answers an order that a twin call reserved meanwhile from the twin's reservation, %s first", async (_name, aloneFirst) => {
    const p = await h.product({ initialStock: 10 });
    const [x, y] = [randomUUID(), randomUUID()];
    // Both calls wait for the same stock row; the first in the queue reserves
    // x after the other has already looked for x's reservation and found none.
    const release = await lockStockRow(h.server, p.id);
    const alone = () => h.client.reserveOrders({ orders: [{ orderId: x, lines: [{ productId: p.id, quantity: 3 }] }] });
    const withNeighbour = () =>
      h.client.reserveOrders({
        orders: [
          { orderId: x, lines: [{ productId: p.id, quantity: 3 }] },
          { orderId: y, lines: [{ productId: p.id, quantity: 5 }] },
        ],
      });
    const first = aloneFirst ? alone() : withNeighbour();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = aloneFirst ? withNeighbour() : alone();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await release();
    const [a, b] = aloneFirst ? [(await first).outcomes, (await second).outcomes] : [(await second).outcomes, (await first).outcomes];
    expect(reservationOf(a[0])).toEqual(reservationOf(b[0]));
    expect(reservationOf(b[1]).lines[0]?.quantity).toBe(5);
    expect(await h.stockOf(p.id)).toMatchObject({ onHand: 10, reserved: 8 });
    expect(await stockInconsistencies(h.server)).toEqual([]);
  });

  it("answers an empty batch with no outcomes", async () => {
    expect((await h.client.reserveOrders({ orders: [] })).outcomes).toEqual([]);
  });

  it.each([
    ["more than 500 orders", () => Array.from({ length: 501 }, () => ({ orderId: randomUUID(), lines: [{ productId: randomUUID(), quantity: 1 }] })), "orders must have at most 500 orders, got 501"],
    [
      "more than 5,000 lines in all",
      () => Array.from({ length: 51 }, () => ({ orderId: randomUUID(), lines: Array.from({ length: 100 }, () => ({ productId: randomUUID(), quantity: 1 })) })),
      "orders must have at most 5000 lines in all, got 5100",
    ],
    [
      "an order id twice",
      () => {
        const orderId = randomUUID();
        return [0, 1, 2].map((i) => ({ orderId: i === 2 ? orderId.toUpperCase() : i === 0 ? orderId : randomUUID(), lines: [{ productId: randomUUID(), quantity: 1 }] }));
      },
      "orders[2].order_id repeats the order of orders[0]",
    ],
  ])("refuses a request with %s as INVALID_ARGUMENT", async (_name, orders, message) => {
    const err = await rpcError(h.client.reserveOrders({ orders: orders() }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain(message);
    expect(err.findDetails(BadRequestSchema)).toHaveLength(1);
  });
});
