import { randomUUID } from "node:crypto";
import { AdjustmentReason } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  readEvent,
  readEvents,
  replicaClients,
  startHarness,
  stockInconsistencies,
  type Harness,
  type ReadEvent,
} from "./inventory-harness.ts";

// Many clients reserving, releasing, committing and restocking a few
// products at once, while a reader pages through ListEvents: every change
// is in the feed exactly once, each order's in the order they happened, and
// the events add up to the stock levels.

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ reservationTtlSeconds: 600 });
});
afterAll(() => h.close());

interface Line {
  productId: string;
  quantity: number;
}
interface EventLines {
  lines?: Line[];
}

/** A deterministic pseudo-random sequence, so that a failure can be replayed. */
function random(seed: number) {
  return () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
}

it("records each change once, each order's in order, and the events add up to the stock", async () => {
  const products = await Promise.all([0, 1, 2].map(() => h.product({ initialStock: 300, lowStockThreshold: 60 })));
  const ids = products.map((p) => p.id);
  const next = random(13);
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  const linesOf = (): Line[] => {
    const chosen = [...new Set([pick(ids), pick(ids)])];
    return chosen.map((productId) => ({ productId, quantity: 1 + Math.floor(next() * 3) }));
  };

  // The reader pages with a small page size for as long as the load runs, and then to the end.
  let loadDone = false;
  const walked: ReadEvent[] = [];
  const walker = (async () => {
    let pageToken = "";
    for (;;) {
      const finished = loadDone;
      const page = await h.client.listEvents({ pageToken, pageSize: 7 });
      walked.push(...page.events.map(readEvent));
      pageToken = page.nextPageToken;
      if (page.events.length === 0) {
        if (finished) return;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  })();

  const clients = replicaClients(h, 4);
  /** What each order should have in the feed, by the answers its calls got. */
  const expected = new Map<string, string[]>();
  const ending = async (orderId: string) => {
    const client = pick(clients);
    const roll = next();
    if (roll < 0.4) {
      // Released twice at once: one release.
      await Promise.all([client.releaseStock({ orderId, reason: "cancelled" }), pick(clients).releaseStock({ orderId })]);
      expected.get(orderId)!.push("inventory.v1.stock.released");
    } else if (roll < 0.75) {
      await Promise.all([client.commitStock({ orderId }), pick(clients).commitStock({ orderId })]);
      expected.get(orderId)!.push("inventory.v1.stock.committed");
    }
  };
  const singles = Array.from({ length: 240 }, async () => {
    const orderId = randomUUID();
    const settled = await pick(clients)
      .reserveStock({ orderId, lines: linesOf() })
      .then(() => true, () => false);
    expected.set(orderId, settled ? ["inventory.v1.stock.reserved"] : []);
    if (settled) await ending(orderId);
  });
  const batches = Array.from({ length: 8 }, async () => {
    const orders = Array.from({ length: 30 }, () => ({ orderId: randomUUID(), lines: linesOf() }));
    const { outcomes } = await pick(clients).reserveOrders({ orders });
    await Promise.all(
      outcomes.map(async (o) => {
        const reserved = o.result.case === "reservation";
        expected.set(o.orderId, reserved ? ["inventory.v1.stock.reserved"] : []);
        if (reserved) await ending(o.orderId);
      }),
    );
  });
  const restocks = Array.from({ length: 12 }, () =>
    h.client.adjustStock({ productId: pick(ids), change: { case: "delta", value: 20 }, reason: AdjustmentReason.RESTOCK }),
  );
  await Promise.all([...singles, ...batches, ...restocks]);
  loadDone = true;
  await walker;

  // Every event once, none missing: the walk equals a listing made after the fact.
  const { events: all } = await readEvents(h.client);
  expect(new Set(walked.map((e) => e.id)).size).toBe(walked.length);
  const since = all.findIndex((e) => e.id === walked[0]?.id);
  expect(walked.map((e) => e.id)).toEqual(all.slice(since).map((e) => e.id));

  // Some orders got stock and some did not, for the test to mean anything.
  const reservedOrders = [...expected.values()].filter((types) => types.length > 0).length;
  expect(reservedOrders).toBeGreaterThan(100);
  expect(reservedOrders).toBeLessThan(expected.size);
  // Per order: exactly its changes, in the order they were made.
  const byOrder = new Map<string, string[]>();
  for (const e of all) if (expected.has(e.subject)) byOrder.set(e.subject, [...(byOrder.get(e.subject) ?? []), e.type]);
  for (const [orderId, types] of expected) expect([orderId, byOrder.get(orderId) ?? []]).toEqual([orderId, types]);

  // The events add up to what GetProduct says.
  for (const id of ids) {
    let onHand = 0;
    let reserved = 0;
    for (const e of all) {
      const data = e.data as EventLines & { productId?: string; movement?: { onHandDelta?: number } };
      const quantity = (data.lines ?? []).filter((l) => l.productId === id).reduce((n, l) => n + l.quantity, 0);
      if (e.type === "inventory.v1.stock.reserved") reserved += quantity;
      if (e.type === "inventory.v1.stock.released") reserved -= quantity;
      if (e.type === "inventory.v1.stock.committed") (reserved -= quantity), (onHand -= quantity);
      if (e.type === "inventory.v1.stock.adjusted" && data.productId === id) onHand += data.movement?.onHandDelta ?? 0;
    }
    expect(await h.stockOf(id)).toMatchObject({ onHand, reserved });
  }
  expect(await stockInconsistencies(h.server)).toEqual([]);
});
