import pg from "pg";
import { afterAll, beforeAll, expect, test } from "vitest";
import { call, createProduct, eventually, listEvents, startSystem, type ListedEvent, type TestSystem } from "./system.ts";

/**
 * Order events under concurrent load: 200 orders at once for a few scarce
 * products, some cancelled while they are still being placed, then
 * concurrent cancels and fulfilments, a cancel racing a fulfil on some.
 * Every change the API reports is one event, and the listing shows each
 * order's events in the order of its changes.
 */

let system: TestSystem;

beforeAll(async () => {
  system = await startSystem("eventsload", { reconcile: true, env: { RECONCILE_INTERVAL_MS: "100" } });
});
afterAll(() => system?.close());

/** The ways an order's events may read, by its final status. */
const LIVES: Record<string, string[][]> = {
  confirmed: [["placed", "confirmed"]],
  rejected: [["placed", "rejected"]],
  cancelled: [
    ["placed", "cancelled"],
    ["placed", "confirmed", "cancelled"],
  ],
  fulfilled: [["placed", "confirmed", "fulfilled"]],
};

test("200 concurrent orders, cancels during placement, then cancels and fulfilments racing: one event per change, each order's in order", async () => {
  const scarce = await createProduct(system, { stock: 50, priceMinor: 1000 });
  const scarcer = await createProduct(system, { stock: 30, priceMinor: 250 });
  const ample = await createProduct(system, { stock: 1000, priceMinor: 99 });
  const lines = (i: number) =>
    [
      [{ product_id: scarce, quantity: 1 }],
      [{ product_id: scarcer, quantity: 1 }],
      [{ product_id: scarce, quantity: 1 }, { product_id: ample, quantity: 2 }],
      [{ product_id: scarcer, quantity: 2 }, { product_id: ample, quantity: 1 }],
    ][i % 4]!;

  // Staff cancel whatever they see pending while the orders come in: those cancels race the settling statements.
  const cancelled = new Map<string, number>();
  let placing = true;
  const canceller = (async () => {
    while (placing) {
      const pending = await call(`${system.api}/orders?status=pending&limit=100`);
      const fresh = (pending.body.data as { id: string }[]).filter((o) => !cancelled.has(o.id)).slice(0, 30);
      for (const o of fresh) cancelled.set(o.id, 0);
      await Promise.all(
        fresh.map(async (o) => cancelled.set(o.id, (await call(`${system.api}/orders/${o.id}/cancel`, { method: "POST" })).status)),
      );
    }
  })();
  const placed = await Promise.all(
    Array.from({ length: 200 }, (_, i) => call(`${system.api}/orders`, { body: { user_id: `load-${i}`, items: lines(i) } })),
  );
  placing = false;
  await canceller;

  const ids = placed.map((p) => (p.status === 201 ? p.body.id : p.body.order_id) as string);
  expect(new Set(ids).size).toBe(200);
  // Confirmed, short, or cancelled before it could be confirmed.
  for (const p of placed) expect([201, 409], JSON.stringify(p.body)).toContain(p.status);
  const confirmedNow = placed.filter((p) => p.status === 201).map((p) => p.body.id as string);
  const rejected = placed.filter((p) => p.body.code === "insufficient_stock").length;
  expect(confirmedNow.length).toBeGreaterThan(30);
  expect(rejected).toBeGreaterThan(30);

  // Then, all at once: cancel a third, fulfil a third, race a cancel and a fulfil on the rest; and cancel the rejected (409).
  const open = confirmedNow.filter((id) => !cancelled.has(id));
  const changes = await Promise.all(
    open.flatMap((id, i) => {
      const cancel = () => call(`${system.api}/orders/${id}/cancel`, { method: "POST" }).then((r) => ({ id, action: "cancelled", status: r.status }));
      const fulfil = () => call(`${system.api}/orders/${id}/fulfill`, { method: "POST" }).then((r) => ({ id, action: "fulfilled", status: r.status }));
      return i % 3 === 0 ? [cancel()] : i % 3 === 1 ? [fulfil()] : [cancel(), fulfil()];
    }),
  );
  const refused = await Promise.all(
    placed
      .filter((p) => p.body.code === "insufficient_stock")
      .slice(0, 10)
      .map((p) => call(`${system.api}/orders/${p.body.order_id}/cancel`, { method: "POST" })),
  );
  expect(refused.every((r) => r.status === 409)).toBe(true);
  const won = changes.filter((c) => c.status === 200);
  // Each race has exactly one winner.
  for (const id of open) expect(won.filter((c) => c.id === id)).toHaveLength(1);

  // The changes the API reported: every order placed, each confirmation and
  // rejection, each cancel during placement that changed the order, each cancel and fulfilment that won.
  const cancelledDuringPlacement = [...cancelled.values()].filter((status) => status === 200).length;
  const expected = 200 + confirmedNow.length + rejected + cancelledDuringPlacement + won.length;

  const finals = new Map(
    await Promise.all(ids.map(async (id) => [id, (await call(`${system.api}/orders/${id}`)).body.status as string] as const)),
  );
  const events = await eventually(async () => {
    const listed = (await listEvents(system, { limit: 100 })).events.filter((e) => finals.has(e.subject));
    expect(listed).toHaveLength(expected);
    return listed;
  }, 20_000);

  const byOrder = new Map<string, ListedEvent[]>();
  for (const event of events) byOrder.set(event.subject, [...(byOrder.get(event.subject) ?? []), event]);
  for (const [id, status] of finals) {
    const own = byOrder.get(id) ?? [];
    const life = own.map((e) => e.type.replace("orders.v1.order.", ""));
    expect(LIVES[status], `${id} ${status}: ${life}`).toContainEqual(life);
    // Each event shows the order as its change left it.
    expect(own.map((e) => e.data.order.status)).toEqual(life.map((l) => (l === "placed" ? "ORDER_STATUS_PENDING" : `ORDER_STATUS_${l.toUpperCase()}`)));
    const times = own.map((e) => Date.parse(e.data.order.updateTime));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    if (life.at(-1) === "cancelled") {
      expect(own.at(-1)!.data.previousStatus).toBe(life.length === 2 ? "ORDER_STATUS_PENDING" : "ORDER_STATUS_CONFIRMED");
    }
  }
  // The winner of each race is the order's last event.
  for (const c of won) expect(byOrder.get(c.id)!.at(-1)!.type).toBe(`orders.v1.order.${c.action}`);

  // The listing holds exactly the outbox's rows for these orders, once each, in its order.
  const db = new pg.Client({ connectionString: system.ordersDatabaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ id: string }>("select id from outbox where subject = any($1) order by txid, position", [[...finals.keys()]]);
    expect(events.map((e) => e.id)).toEqual(rows.map((r) => r.id));
  } finally {
    await db.end();
  }
});
