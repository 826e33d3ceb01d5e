import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { call, createProduct, startSystem, type TestSystem } from "./system.ts";

let system: TestSystem;
let product: string;

beforeAll(async () => {
  system = await startSystem("pagination", { env: { RECONCILE_INTERVAL_MS: "0" } });
  product = await createProduct(system, { stock: 100_000 });
});
afterAll(() => system?.close());

interface ListedOrder {
  id: string;
  status: string;
  created_at: string;
}

/** Places `count` orders for `user`, all at once; returns their ids. */
async function placeOrders(user: string, count: number): Promise<string[]> {
  const responses = await Promise.all(
    Array.from({ length: count }, () =>
      call(`${system.api}/orders`, { body: { user_id: user, items: [{ product_id: product, quantity: 1 }] } }),
    ),
  );
  for (const res of responses) expect(res.status).toBe(201);
  return responses.map((res) => res.body.id as string);
}

/** Follows next_cursor from the first page to the last; returns every order seen, in order, and the page count. */
async function walk(query: string, onPage: () => Promise<void> = async () => {}) {
  const seen: ListedOrder[] = [];
  let pages = 0;
  let cursor: string | null = null;
  do {
    const res = await call(`${system.api}/orders?${query}${cursor ? `&cursor=${cursor}` : ""}`);
    expect(res.status).toBe(200);
    seen.push(...res.body.data);
    cursor = res.body.next_cursor;
    pages++;
    await onPage();
  } while (cursor !== null);
  return { seen, pages };
}

function expectNewestFirst(orders: ListedOrder[]) {
  for (let i = 1; i < orders.length; i++) {
    const [newer, older] = [orders[i - 1]!, orders[i]!];
    // Equal milliseconds are ordered by the exact time and the id in the database.
    expect(Date.parse(newer.created_at)).toBeGreaterThanOrEqual(Date.parse(older.created_at));
  }
}

const ids = (orders: ListedOrder[]) => orders.map((o) => o.id);

describe("walking GET /orders page by page", () => {
  test("sees each of 250 orders created concurrently exactly once, newest first", async () => {
    const user = "walker-1";
    const created = await placeOrders(user, 250);

    const { seen, pages } = await walk(`user_id=${user}&limit=7`);

    expect(pages).toBe(Math.ceil(250 / 7));
    expect(new Set(ids(seen)).size).toBe(seen.length);
    expect(ids(seen).sort()).toEqual([...created].sort());
    expectNewestFirst(seen);
  });

  test("sees each order exactly once while new orders keep arriving during the walk", async () => {
    const user = "walker-2";
    const before = await placeOrders(user, 250);
    const during: string[] = [];
    const inserts: Promise<void>[] = [];

    const { seen } = await walk(`user_id=${user}&limit=9`, async () => {
      // Five new orders race with the request for the next page.
      inserts.push(placeOrders(user, 5).then((placed) => void during.push(...placed)));
    });
    await Promise.all(inserts);

    expect(new Set(ids(seen)).size).toBe(seen.length);
    expect(ids(seen).filter((id) => before.includes(id)).sort()).toEqual([...before].sort());
    // Anything else seen is one of the new orders, never an order of another user.
    expect(ids(seen).filter((id) => !before.includes(id)).every((id) => during.includes(id))).toBe(true);
    expectNewestFirst(seen);
    // The new orders are newer than the walk's position, so they are on the next walk's first pages.
    const again = await walk(`user_id=${user}&limit=100`);
    expect(again.seen).toHaveLength(250 + during.length);
  });

  test("pages 20 orders by default and up to 100 on request", async () => {
    const user = "walker-3";
    await placeOrders(user, 120);

    const byDefault = await call(`${system.api}/orders?user_id=${user}`);
    const largest = await call(`${system.api}/orders?user_id=${user}&limit=100`);
    const tooLarge = await call(`${system.api}/orders?user_id=${user}&limit=101`);

    expect(byDefault.body.data).toHaveLength(20);
    expect(largest.body.data).toHaveLength(100);
    expect(tooLarge.status).toBe(400);
  });
});

describe("filters", () => {
  test("created_after and created_before split the orders into disjoint windows that cover them all", async () => {
    const user = "windows";
    const created = await placeOrders(user, 60);
    const { seen: all } = await walk(`user_id=${user}&limit=100`);
    const split = all[25]!.created_at;

    const { seen: newer } = await walk(`user_id=${user}&limit=8&created_after=${split}`);
    const { seen: older } = await walk(`user_id=${user}&limit=8&created_before=${split}`);
    const { seen: empty } = await walk(`user_id=${user}&created_after=${split}&created_before=${split}`);

    expect([...ids(newer), ...ids(older)].sort()).toEqual([...created].sort());
    expect(newer.every((o) => Date.parse(o.created_at) >= Date.parse(split))).toBe(true);
    expect(older.every((o) => Date.parse(o.created_at) < Date.parse(split))).toBe(true);
    expect(empty).toEqual([]);
  });

  test("accepts RFC 3339 date-times with an offset", async () => {
    const user = "offsets";
    const [id] = await placeOrders(user, 1);
    const { seen } = await walk(`user_id=${user}&created_after=${encodeURIComponent("2000-01-01T01:00:00+01:00")}`);
    expect(ids(seen)).toEqual([id]);
  });

  test("combines status with the user and the time window", async () => {
    const user = "statuses";
    const created = await placeOrders(user, 30);
    const cancelled = created.slice(0, 12);
    for (const id of cancelled) await call(`${system.api}/orders/${id}/cancel`, { method: "POST" });

    const { seen } = await walk(`user_id=${user}&status=cancelled&limit=5&created_after=2000-01-01T00:00:00Z`);
    const { seen: confirmed } = await walk(`user_id=${user}&status=confirmed&limit=5`);

    expect(ids(seen).sort()).toEqual([...cancelled].sort());
    expect(seen.every((o) => o.status === "cancelled")).toBe(true);
    expect(confirmed).toHaveLength(18);
  });

  test("refuses a window that ends before it starts, naming the field", async () => {
    const res = await call(
      `${system.api}/orders?created_after=2026-12-01T00:00:00Z&created_before=2026-11-01T00:00:00Z`,
    );

    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({
      code: "validation_failed",
      errors: [{ field: "/querystring/created_after", message: expect.any(String) }],
    });
  });

  test("refuses a date that is not an RFC 3339 date-time", async () => {
    for (const value of ["yesterday", "2026-11-01", "2026-11-01T00:00:00"]) {
      const res = await call(`${system.api}/orders?created_before=${value}`);
      expect(res.status, value).toBe(400);
      expect(res.body.errors, value).toEqual([expect.objectContaining({ field: "/querystring/created_before" })]);
    }
  });
});

describe("walking GET /products page by page", () => {
  test("sees every product exactly once", async () => {
    const added = await Promise.all(Array.from({ length: 11 }, () => createProduct(system, { stock: 1 })));
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await call(`${system.api}/products?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.data.map((p: { id: string }) => p.id));
      cursor = res.body.next_cursor;
    } while (cursor !== null);

    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(expect.arrayContaining([product, ...added]));
  });
});
