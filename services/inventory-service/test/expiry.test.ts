import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { ReservationStatus } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { afterAll, beforeAll, expect, it } from "vitest";
import { rpcError, startHarness, stockInconsistencies, TEST_OPERATOR, type Harness } from "./inventory-harness.ts";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ reservationTtlSeconds: 1, sweepIntervalMs: 50 });
});
afterAll(() => h.close());

async function available(productId: string) {
  return (await h.client.getProduct({ productId })).product!.stock!.available;
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

it("expires an unconfirmed reservation after its TTL, gives the stock back and refuses to commit it", async () => {
  const product = await h.product({ initialStock: 5 });
  const orderId = randomUUID();
  const lines = [{ productId: product.id, quantity: 3 }];
  await h.client.reserveStock({ orderId, lines });
  expect(await available(product.id)).toBe(2);

  await waitUntil(async () => (await available(product.id)) === 5);

  const commit = await rpcError(h.client.commitStock({ orderId }));
  expect(commit.code).toBe(Code.FailedPrecondition);
  expect(commit.rawMessage).toBe(`the reservation for order ${orderId} is expired`);
  const release = await h.client.releaseStock({ orderId });
  expect(release.reservation?.status).toBe(ReservationStatus.EXPIRED);
  const again = await rpcError(h.client.reserveStock({ orderId, lines }));
  expect(again.code).toBe(Code.FailedPrecondition);
  const ledger = await h.server.db
    .selectFrom("stock_movements")
    .select(["kind", "reserved_delta", "actor"])
    .where("order_id", "=", orderId)
    .orderBy("id")
    .execute();
  expect(ledger).toEqual([
    { kind: "reserve", reserved_delta: 3, actor: TEST_OPERATOR },
    { kind: "expire", reserved_delta: -3, actor: "system" },
  ]);
});

it("does not expire a confirmed reservation", async () => {
  const product = await h.product({ initialStock: 5 });
  const confirmed = randomUUID();
  const unconfirmed = randomUUID();
  await h.client.reserveStock({ orderId: confirmed, lines: [{ productId: product.id, quantity: 2 }] });
  await h.client.reserveStock({ orderId: unconfirmed, lines: [{ productId: product.id, quantity: 1 }] });
  await h.client.confirmReservations({ orderIds: [confirmed] });

  await waitUntil(async () => (await available(product.id)) === 3);
  const commit = await h.client.commitStock({ orderId: confirmed });
  expect(commit.reservation?.status).toBe(ReservationStatus.COMMITTED);
  expect((await h.client.getProduct({ productId: product.id })).product?.stock).toMatchObject({ onHand: 3, reserved: 0 });
  expect(await stockInconsistencies(h.server)).toEqual([]);
});
