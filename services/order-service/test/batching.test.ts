import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { checkConsistency } from "@ecommerce/tools/check-consistency.ts";
import pg from "pg";
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import type { BatchStats } from "@ecommerce/batching/batcher.ts";
import { call, createProduct, eventually, startSystem, stockOf, type TestSystem } from "./system.ts";

/**
 * Natural batching of placement: orders placed at the same moment share
 * each step's statement or call, and each still gets its own answer.
 * Batches are forced by holding the first ReserveOrders call while more
 * orders arrive: they queue, and go through together once it is released.
 */

let system: TestSystem;
let queueSystem: TestSystem | undefined;

beforeAll(async () => {
  system = await startSystem("batching", { env: {} });
});
afterAll(async () => {
  await system?.close();
  await queueSystem?.close();
});

type ReserveOrders = TestSystem["app"]["inventory"]["reserveOrders"];
const originals = new Map<TestSystem, ReserveOrders>();
afterEach(() => {
  for (const [s, original] of originals) s.app.inventory.reserveOrders = original;
  originals.clear();
});

/**
 * Replaces the app's ReserveOrders with `wrap(original)`, undone after the
 * test. Returns how many calls were made and how many orders each carried.
 */
function interceptReserve(s: TestSystem, wrap: (original: ReserveOrders, call: number) => ReserveOrders) {
  const original = s.app.inventory.reserveOrders;
  originals.set(s, original);
  const sizes: number[] = [];
  s.app.inventory.reserveOrders = ((request, options) => {
    sizes.push(request.orders?.length ?? 0);
    return wrap(original, sizes.length)(request, options);
  }) as ReserveOrders;
  return sizes;
}

/** Holds the first ReserveOrders call until `release` is called; the others go straight through. */
function holdFirstReserve(s: TestSystem) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const sizes = interceptReserve(s, (original, n) => (n === 1 ? async (...args) => (await gate, original(...args)) : original));
  return { sizes, release };
}

const place = (s: TestSystem, body: unknown, key?: string) =>
  call(`${s.api}/orders`, { body, headers: key ? { "idempotency-key": key } : {} });

/** Waits until `count` orders of these users are stored (and so queued for their reservation). */
async function storedOrders(s: TestSystem, userIds: string[], count: number): Promise<void> {
  const client = new pg.Client({ connectionString: s.ordersDatabaseUrl });
  await client.connect();
  try {
    await eventually(async () => {
      const { rows } = await client.query("select count(*)::int as n from orders where user_id = any($1)", [userIds]);
      expect(rows[0].n).toBe(count);
    });
    // Their requests move on to the reserve step as soon as the insert answers.
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    await client.end();
  }
}

const stepStats = (s: TestSystem, name: string): BatchStats => s.app.orderSteps.stats().find((b) => b.name === name)!;

test("a batch mixing confirmable, short, unknown-product and repeated-key orders gives each its own answer", async () => {
  const ample = await createProduct(system, { stock: 100, priceMinor: 1200 });
  const scarce = await createProduct(system, { stock: 1 });
  const user = `mix-${randomUUID()}`;
  const { sizes, release } = holdFirstReserve(system);

  const first = place(system, { user_id: user, items: [{ product_id: ample, quantity: 1 }] });
  await storedOrders(system, [user], 1);
  const key = randomUUID();
  const keyed = { user_id: user, items: [{ product_id: ample, quantity: 2 }] };
  const [confirmable, short, unknown, repeated, twin] = [
    place(system, { user_id: user, items: [{ product_id: ample, quantity: 3 }] }),
    place(system, { user_id: user, items: [{ product_id: scarce, quantity: 5 }] }),
    place(system, { user_id: user, items: [{ product_id: randomUUID(), quantity: 1 }] }),
    place(system, keyed, key),
    place(system, keyed, key),
  ];
  // Four orders are stored: the twin shares its key's order.
  await storedOrders(system, [user], 5);
  release();
  const answers = await Promise.all([first, confirmable, short, unknown, repeated, twin]);

  // The held call carried the first order; the rest went in one call together.
  expect(sizes).toEqual([1, 4]);
  const [a0, a1, a2, a3, a4, a5] = answers;
  expect(a0!.status).toBe(201);
  expect(a1!.status).toBe(201);
  expect(a1!.body).toMatchObject({ status: "confirmed", total_minor: 3600 });
  expect(a2!.status).toBe(409);
  expect(a2!.body).toMatchObject({ code: "insufficient_stock", unavailable_items: [{ product_id: scarce, requested: 5, available: 1 }] });
  expect(a3!.status).toBe(422);
  expect(a3!.body.code).toBe("unknown_product");
  // Two requests with one key make one order: the second is refused while the first is in flight...
  expect(a4!.status).toBe(201);
  expect(a5!.status).toBe(409);
  expect(a5!.body.code).toBe("idempotency_key_in_flight");
  // ...and a retry replays the first's answer.
  const retried = await place(system, keyed, key);
  expect(retried.status).toBe(201);
  expect(retried.headers.get("idempotent-replayed")).toBe("true");
  expect(retried.body).toEqual(a4!.body);

  // Each refused order is kept as rejected; only confirmed orders hold stock.
  for (const problem of [a2!, a3!]) expect((await call(`${system.api}/orders/${problem.body.order_id}`)).body.status).toBe("rejected");
  expect(await stockOf(system, ample)).toMatchObject({ reserved: 1 + 3 + 2 });
  expect(await stockOf(system, scarce)).toMatchObject({ reserved: 0 });
});

test("a batch of orders costs one statement per database step and one ReserveOrders call, whatever its size", async () => {
  const product = await createProduct(system, { stock: 1000 });
  const users = Array.from({ length: 40 }, (_, i) => `round-${i}-${randomUUID()}`);
  const before = Object.fromEntries(["store", "reserve", "settle"].map((n) => [n, stepStats(system, n)]));
  const { sizes, release } = holdFirstReserve(system);

  const statements: string[] = [];
  const ordersDatabase = new URL(system.ordersDatabaseUrl).pathname.slice(1);
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: Parameters<typeof query>) {
    const text = String((args[0] as { text?: string }).text ?? args[0]);
    // The test's own polling (storedOrders) is not the service's.
    if (this.database === ordersDatabase && !text.includes("user_id = any($1)")) statements.push(text);
    return Reflect.apply(query, this, args);
  } as typeof query;
  let answers: Awaited<ReturnType<typeof call>>[];
  try {
    const held = place(system, { user_id: users[0], items: [{ product_id: product, quantity: 1 }] });
    await storedOrders(system, users.slice(0, 1), 1);
    const rest = users.slice(1).map((user_id) => place(system, { user_id, items: [{ product_id: product, quantity: 1 }] }));
    await storedOrders(system, users, users.length);
    release();
    answers = await Promise.all([held, ...rest]);
  } finally {
    pg.Client.prototype.query = query;
  }

  expect(answers.map((a) => a.status)).toEqual(users.map(() => 201));
  const batches = (name: string) => stepStats(system, name).batches - before[name]!.batches;
  // Every statement is a batch's, and every call to inventory a batch's.
  expect(statements).toHaveLength(batches("store") + batches("settle"));
  expect(sizes).toHaveLength(batches("reserve"));
  // The 39 orders held back shared one ReserveOrders call. Out of it, the
  // first order finds the settle step idle and starts at once, alone
  // (ORDER_BATCHES_IN_FLIGHT = 1); the rest share the next batch.
  expect(sizes).toEqual([1, 39]);
  expect(batches("settle")).toBeLessThanOrEqual(1 + 1 + 1);
  expect(statements.filter((t) => t.includes("settled as"))).toHaveLength(batches("settle"));
});

test("a crash after the insert or after ReserveOrders leaves pending orders that the reconciler settles consistently", async () => {
  const crashing = await startSystem("batchcrash", {
    reconcile: true,
    env: { RECONCILE_INTERVAL_MS: "100", PENDING_GRACE_MS: "300", PENDING_GIVE_UP_MS: "10000" },
  });
  try {
    const product = await createProduct(crashing, { stock: 30 });
    const lost = () => new ConnectError("the process died", Code.Unavailable);
    // Odd calls die before inventory hears of them (as a crash after the
    // insert), even calls after inventory reserved (as a crash after
    // ReserveOrders): either way no order is settled by its request.
    const sizes = interceptReserve(crashing, (original, n) =>
      n % 2 === 1
        ? async () => {
            throw lost();
          }
        : async (...args) => {
            await original(...args);
            throw lost();
          },
    );
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => place(crashing, { user_id: `crash-${i}`, items: [{ product_id: product, quantity: 1 }] }, randomUUID())),
    );
    expect(answers.every((a) => a.status === 503 && a.body.code === "inventory_unavailable")).toBe(true);
    expect(sizes.length).toBeGreaterThanOrEqual(2);
    expect(sizes.length).toBeLessThan(40);

    // Inventory answers again: the reconciler re-drives every order.
    crashing.app.inventory.reserveOrders = originals.get(crashing)!;
    originals.delete(crashing);
    const report = await eventually(async () => {
      const r = await checkConsistency({ ordersUrl: crashing.ordersDatabaseUrl, inventoryUrl: crashing.inventoryDatabaseUrl, recheckAfterMs: 50 });
      expect(r.inProgress).toBe(0);
      return r;
    }, 20_000);
    expect(report.findings).toEqual([]);
    const confirmed = await call(`${crashing.api}/orders?status=confirmed&limit=100`);
    const rejected = await call(`${crashing.api}/orders?status=rejected&limit=100`);
    expect(confirmed.body.data).toHaveLength(30);
    expect(rejected.body.data).toHaveLength(10);
    expect(await stockOf(crashing, product)).toMatchObject({ reserved: 30, available: 0 });
  } finally {
    await crashing.close();
  }
});

test("a burst past the queue bound gets fast 503s with Retry-After, and the queue never grows past its bound", async () => {
  queueSystem = await startSystem("batchqueue", { env: { ORDER_QUEUE_MAX: "10", ORDER_BATCH_MAX: "10" } });
  const product = await createProduct(queueSystem, { stock: 100_000 });
  const { release } = holdFirstReserve(queueSystem);
  const held = place(queueSystem, { user_id: "held", items: [{ product_id: product, quantity: 1 }] });
  await storedOrders(queueSystem, ["held"], 1);

  const heapBefore = process.memoryUsage().heapUsed;
  const started = performance.now();
  const answered: Awaited<ReturnType<typeof call>>[] = [];
  const burst = Array.from({ length: 300 }, (_, i) =>
    place(queueSystem!, { user_id: `burst-${i}`, items: [{ product_id: product, quantity: 1 }] }).then((a) => (answered.push(a), a)),
  );
  // Everything that is not waiting behind the held batch is answered; then the answers stop.
  // (The first answers take a moment: 300 customers' tokens are minted and verified first.)
  let seen = -1;
  while (answered.length === 0 || seen !== answered.length) {
    if (performance.now() - started > 10_000) break;
    seen = answered.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  const elapsedMs = performance.now() - started - 300;
  const refused = [...answered];

  // While the held batch is in flight, everything past the bound is refused at once, not queued.
  expect(refused.length).toBeGreaterThanOrEqual(300 - 2 * 10 - 10);
  expect(elapsedMs).toBeLessThan(5_000);
  for (const answer of refused) {
    expect(answer.body.code).toBe("overloaded");
    expect(answer.headers.get("retry-after")).toBe("2");
    expect(answer.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  }
  // Refused before being stored: no order; refused between steps: the order stays pending for the reconciler.
  const pending = refused.filter((a) => a.body.order_id !== undefined);
  for (const answer of pending) expect((await call(`${queueSystem.api}/orders/${answer.body.order_id}`)).body.status).toBe("pending");
  expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 2 ** 20);

  expect(refused.every((a) => a.status === 503)).toBe(true);
  release();
  expect((await held).status).toBe(201);
  const waiting = (await Promise.all(burst)).filter((a) => !refused.includes(a));
  expect(waiting.every((a) => a.status === 201)).toBe(true);
  expect(stepStats(queueSystem, "reserve").largest).toBeLessThanOrEqual(10);
});

test("cancels and fulfilments asked at once share their UPDATEs, and each order still changes at most once", async () => {
  const product = await createProduct(system, { stock: 100 });
  const placed = await Promise.all(
    Array.from({ length: 30 }, (_, i) => place(system, { user_id: `change-${i}`, items: [{ product_id: product, quantity: 1 }] })),
  );
  const ids = placed.map((p) => p.body.id as string);
  const before = stepStats(system, "transition");

  // Every order is cancelled and fulfilled at the same moment: one of the two wins, per order.
  const answers = await Promise.all(
    ids.flatMap((id) => [call(`${system.api}/orders/${id}/cancel`, { method: "POST" }), call(`${system.api}/orders/${id}/fulfill`, { method: "POST" })]),
  );
  const after = stepStats(system, "transition");
  for (let i = 0; i < ids.length; i++) {
    const [cancel, fulfil] = [answers[2 * i]!, answers[2 * i + 1]!];
    expect([cancel.status, fulfil.status].sort()).toEqual([200, 409]);
    const winner = cancel.status === 200 ? cancel : fulfil;
    expect((await call(`${system.api}/orders/${ids[i]}`)).body.status).toBe(winner.body.status);
  }
  expect(after.items - before.items).toBe(60);
  expect(after.batches - before.batches).toBeLessThan(60);
  const cancelled = answers.filter((a, i) => i % 2 === 0 && a.status === 200).length;
  const fulfilled = answers.filter((a, i) => i % 2 === 1 && a.status === 200).length;
  // Released stock is back; committed stock has left the warehouse.
  await eventually(async () => expect(await stockOf(system, product)).toEqual({ onHand: 100 - fulfilled, reserved: 0, available: 100 - fulfilled }));
  expect(cancelled + fulfilled).toBe(30);
});

test("GET /metrics shows each step's batch sizes and the process metrics, outside the API's description", async () => {
  const res = await fetch(`${system.root}/metrics`);
  const text = await res.text();
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
  for (const step of ["store", "reserve", "settle"]) expect(text).toMatch(new RegExp(`orders_batch_size_count\\{step="${step}"\\} [1-9]`));
  expect(text).toMatch(/process_resident_memory_bytes \d/);
  const openapi = await call(`${system.root}/openapi.json`);
  expect(Object.keys(openapi.body.paths)).not.toContain("/metrics");
});
