import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { AdjustmentReason } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { afterAll, beforeAll, expect, it } from "vitest";
import { outcomes, replicaClients, startHarness, stockInconsistencies, type Harness } from "./inventory-harness.ts";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

/** Clients on separate HTTP/2 connections, as separate order-service replicas would be. */
const clients = () => replicaClients(h);

it("lets exactly ten of two hundred racing orders have the last ten units", async () => {
  const product = await h.product({ initialStock: 10 });
  const cs = clients();
  const results = await Promise.allSettled(
    Array.from({ length: 200 }, (_, i) =>
      cs[i % cs.length]!.reserveStock({ orderId: randomUUID(), lines: [{ productId: product.id, quantity: 1 }] }),
    ),
  );
  expect(outcomes(results)).toEqual({ ok: 10, FailedPrecondition: 190 });
  const stock = await h.server.db
    .selectFrom("stock_levels")
    .select(["on_hand", "reserved"])
    .where("product_id", "=", product.id)
    .executeTakeFirstOrThrow();
  expect(stock).toEqual({ on_hand: 10, reserved: 10 });
  expect(await stockInconsistencies(h.server)).toEqual([]);
});

it("never deadlocks when multi-line orders race for overlapping products in opposite orders", async () => {
  const products = await Promise.all(Array.from({ length: 4 }, () => h.product({ initialStock: 40 })));
  const ids = products.map((p) => p.id);
  const cs = clients();
  const results = await Promise.allSettled(
    Array.from({ length: 150 }, (_, i) => {
      // Three of the four products, ascending for even orders and descending for odd ones.
      const picked = ids.filter((_, j) => j !== i % 4);
      const lines = picked.map((productId, j) => ({ productId, quantity: 1 + ((i + j) % 3) }));
      return cs[i % cs.length]!.reserveStock({ orderId: randomUUID(), lines: i % 2 ? lines.reverse() : lines });
    }),
  );
  const counts = outcomes(results);
  expect(Object.keys(counts).filter((k) => k !== "ok" && k !== "FailedPrecondition")).toEqual([]);
  expect(counts.ok).toBeGreaterThan(0);
  expect(counts.FailedPrecondition).toBeGreaterThan(0);
  expect(await stockInconsistencies(h.server)).toEqual([]);
});

it("keeps stock and ledger consistent while reservations, releases, commits, expiries and adjustments interleave", async () => {
  const products = await Promise.all(Array.from({ length: 3 }, () => h.product({ initialStock: 60 })));
  const ids = products.map((p) => p.id);
  const cs = clients();
  const work = Array.from({ length: 120 }, async (_, i) => {
    const c = cs[i % cs.length]!;
    if (i % 10 === 9) {
      return c.adjustStock({
        productId: ids[i % 3]!,
        change: { case: "delta", value: i % 20 === 9 ? -1 : 2 },
        reason: i % 20 === 9 ? AdjustmentReason.WRITE_OFF : AdjustmentReason.RESTOCK,
      });
    }
    const orderId = randomUUID();
    const lines = ids.slice(0, 1 + (i % 3)).map((productId) => ({ productId, quantity: 1 + (i % 2) }));
    await c.reserveStock({ orderId, lines: i % 2 ? lines.reverse() : lines });
    if (i % 3 === 0) return c.releaseStock({ orderId, reason: "order cancelled" });
    if (i % 3 === 1) return c.commitStock({ orderId });
    return c.confirmReservations({ orderIds: [orderId] });
  });
  const counts = outcomes(await Promise.allSettled(work));
  expect(Object.keys(counts).filter((k) => k !== "ok" && k !== "FailedPrecondition")).toEqual([]);
  expect(await stockInconsistencies(h.server)).toEqual([]);
});

it("answers a repeated ReserveStock that races the release of the same order without a deadlock", async () => {
  const product = await h.product({ initialStock: 5 });
  const orderId = randomUUID();
  const lines = [{ productId: product.id, quantity: 1 }];
  await h.client.reserveStock({ orderId, lines });

  // A release in progress: it holds the reservation row and is about to
  // lock the stock row, as ReleaseStock, CommitStock and expiry do.
  const tx = await h.server.db.startTransaction().execute();
  await tx.updateTable("reservations").set({ status: "released" }).where("order_id", "=", orderId).execute();
  const retry = h.client.reserveStock({ orderId, lines }).then(
    () => "ok",
    (e) => Code[ConnectError.from(e).code],
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  await tx.selectFrom("stock_levels").select("product_id").where("product_id", "=", product.id).forNoKeyUpdate().execute();
  await tx.commit().execute();

  // The repeat waits for the release and then finds the reservation released.
  expect(await retry).toBe("FailedPrecondition");
});
