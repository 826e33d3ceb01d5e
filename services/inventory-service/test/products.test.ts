import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "@ecommerce/gen/google/rpc/error_details_pb.ts";
import { AdjustmentReason } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError, startHarness, stockInconsistencies, TEST_OPERATOR, type Harness } from "./inventory-harness.ts";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe("CreateProduct and GetProduct", () => {
  it("creates a product with its initial stock and an 'initial' ledger row", async () => {
    const { product } = await h.client.createProduct({
      sku: "DESK-LAMP",
      name: "Desk Lamp",
      description: "LED lamp",
      priceMinor: 3999n,
      currency: "EUR",
      initialStock: 12,
    });
    expect(product).toMatchObject({ sku: "DESK-LAMP", name: "Desk Lamp", priceMinor: 3999n, currency: "EUR" });
    expect(product?.stock).toMatchObject({ onHand: 12, reserved: 0, available: 12 });
    const fetched = await h.client.getProduct({ productId: product!.id });
    expect(fetched.product).toEqual(product);
    const ledger = await h.server.db.selectFrom("stock_movements").selectAll().where("product_id", "=", product!.id).execute();
    expect(ledger.map((m) => [m.kind, m.on_hand_delta, m.reserved_delta])).toEqual([["initial", 12, 0]]);
  });

  it("refuses a SKU that already exists as ALREADY_EXISTS", async () => {
    await h.product({ sku: "DUPLICATE" });
    const err = await rpcError(h.product({ sku: "DUPLICATE" }));
    expect(err.code).toBe(Code.AlreadyExists);
    expect(err.rawMessage).toBe("a product with sku DUPLICATE already exists");
  });

  it("refuses bad fields, naming each of them", async () => {
    const err = await rpcError(
      h.client.createProduct({ sku: "has space", name: " ", priceMinor: -1n, currency: "usd", initialStock: -5 }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    for (const field of ["sku", "name", "price_minor", "currency", "initial_stock"]) {
      expect(err.rawMessage).toContain(`${field} `);
    }
    // The same, typed, for programs: one google.rpc.BadRequest field violation per bad field.
    const [badRequest, ...more] = err.findDetails(BadRequestSchema);
    expect(more).toEqual([]);
    expect(badRequest?.fieldViolations.map(({ field, description }) => ({ field, description }))).toEqual([
      { field: "sku", description: 'must be 1 to 64 letters, digits, \'-\' or \'_\', got "has space"' },
      { field: "name", description: "is required" },
      { field: "price_minor", description: "must be zero or more" },
      { field: "currency", description: 'must be an ISO 4217 code of three upper-case letters, got "usd"' },
      { field: "initial_stock", description: "must be zero or more" },
    ]);
  });

  it("keeps the low-stock threshold a product was created with, and shows it wherever the product is answered", async () => {
    const { product } = await h.client.createProduct({
      sku: "THRESHOLD-SEVEN",
      name: "Seven",
      priceMinor: 100n,
      currency: "USD",
      initialStock: 20,
      lowStockThreshold: 7,
    });
    const expected = { onHand: 20, reserved: 0, available: 20, lowStockThreshold: 7 };
    expect(product?.stock).toEqual(expect.objectContaining(expected));
    expect((await h.client.getProduct({ productId: product!.id })).product?.stock).toEqual(expect.objectContaining(expected));
    let listed;
    for (let pageToken = ""; listed === undefined; ) {
      const page = await h.client.listProducts({ pageSize: 100, pageToken });
      listed = page.products.find((p) => p.id === product!.id);
      if (page.nextPageToken === "") break;
      pageToken = page.nextPageToken;
    }
    expect(listed?.stock).toEqual(expect.objectContaining(expected));
    const adjusted = await h.client.adjustStock({ productId: product!.id, change: { case: "delta", value: 1 }, reason: AdjustmentReason.RESTOCK });
    expect(adjusted.product?.stock).toEqual(expect.objectContaining({ onHand: 21, lowStockThreshold: 7 }));
    // Left out, it is 0: no low-stock events.
    expect((await h.product()).stock?.lowStockThreshold).toBe(0);
  });

  it.each([-1, 1_000_000_001])("refuses a low-stock threshold of %i", async (lowStockThreshold) => {
    const err = await rpcError(h.product({ lowStockThreshold }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(`low_stock_threshold must be from 0 (no low-stock events) to 1000000000, got ${lowStockThreshold}`);
    expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual(["low_stock_threshold"]);
  });

  it("answers NOT_FOUND for an unknown product and INVALID_ARGUMENT for a malformed id", async () => {
    const id = randomUUID();
    const missing = await rpcError(h.client.getProduct({ productId: id }));
    expect(missing.code).toBe(Code.NotFound);
    expect(missing.rawMessage).toBe(`product ${id} not found`);
    const malformed = await rpcError(h.client.getProduct({ productId: "1; DROP TABLE products" }));
    expect(malformed.code).toBe(Code.InvalidArgument);
  });
});

describe("ListProducts", () => {
  it("pages through the whole catalogue in SKU order", async () => {
    for (const sku of ["PAGE-C", "PAGE-A", "PAGE-E", "PAGE-B", "PAGE-D"]) await h.product({ sku });
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const res = await h.client.listProducts({ pageSize: 2, pageToken });
      expect(res.products.length).toBeLessThanOrEqual(2);
      seen.push(...res.products.map((p) => p.sku));
      pageToken = res.nextPageToken;
      pages++;
    } while (pageToken !== "");
    const all = (await h.client.listProducts({ pageSize: 100 })).products.map((p) => p.sku);
    expect(seen).toEqual(all);
    expect(seen).toEqual([...all].sort());
    expect(pages).toBe(Math.ceil(all.length / 2));
  });

  it("refuses a page size out of range and a page token it did not issue", async () => {
    for (const pageSize of [-1, 101]) {
      const err = await rpcError(h.client.listProducts({ pageSize }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain("page_size must be from 1 to 100");
    }
    const forged = Buffer.from(JSON.stringify({ after: "a\u0000" })).toString("base64url");
    for (const pageToken of ["not-a-token", "!!!", Buffer.from("[1]").toString("base64url"), forged]) {
      const err = await rpcError(h.client.listProducts({ pageToken }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain("page_token");
    }
  });
});

it("refuses text PostgreSQL cannot store (a NUL character) as INVALID_ARGUMENT naming the field", async () => {
  const err = await rpcError(
    h.client.createProduct({ sku: `NUL-${randomUUID().slice(0, 8)}`, name: "a\u0000b", priceMinor: 100n, currency: "USD" }),
  );
  expect(err.code).toBe(Code.InvalidArgument);
  expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual(["name"]);
});

describe("AdjustStock", () => {
  it("restocks, writes off and corrects counts, recording each in the ledger", async () => {
    const p = await h.product({ initialStock: 10 });
    const restock = await h.client.adjustStock({
      productId: p.id,
      change: { case: "delta", value: 5 },
      reason: AdjustmentReason.RESTOCK,
      note: "delivery 4711",
      actor: TEST_OPERATOR,
    });
    expect(restock.product?.stock).toMatchObject({ onHand: 15, available: 15 });
    expect(restock.movement).toMatchObject({
      productId: p.id,
      kind: "restock",
      onHandDelta: 5,
      reservedDelta: 0,
      note: "delivery 4711",
      actor: TEST_OPERATOR,
    });
    await h.client.adjustStock({ productId: p.id, change: { case: "delta", value: -2 }, reason: AdjustmentReason.WRITE_OFF });
    const corrected = await h.client.adjustStock({
      productId: p.id,
      change: { case: "setOnHand", value: 7 },
      reason: AdjustmentReason.COUNT_CORRECTION,
    });
    expect(corrected.product?.stock?.onHand).toBe(7);
    expect(corrected.movement?.onHandDelta).toBe(-6);
    expect(await stockInconsistencies(h.server)).toEqual([]);
  });

  it("never lets on hand go below what is reserved", async () => {
    const p = await h.product({ initialStock: 10 });
    await h.client.reserveStock({ orderId: randomUUID(), lines: [{ productId: p.id, quantity: 8 }] });
    const err = await rpcError(
      h.client.adjustStock({ productId: p.id, change: { case: "delta", value: -3 }, reason: AdjustmentReason.WRITE_OFF }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe(`on hand of product ${p.id} cannot become 7: 8 units are reserved`);
    const set = await rpcError(
      h.client.adjustStock({ productId: p.id, change: { case: "setOnHand", value: 0 }, reason: AdjustmentReason.COUNT_CORRECTION }),
    );
    expect(set.code).toBe(Code.FailedPrecondition);
    expect((await h.client.getProduct({ productId: p.id })).product?.stock).toMatchObject({ onHand: 10, reserved: 8 });
  });

  it("refuses a missing reason, a zero delta, a missing change and an unknown product", async () => {
    const p = await h.product();
    const noReason = await rpcError(h.client.adjustStock({ productId: p.id, change: { case: "delta", value: 1 } }));
    expect(noReason.code).toBe(Code.InvalidArgument);
    expect(noReason.rawMessage).toContain("reason must be");
    const zero = await rpcError(
      h.client.adjustStock({ productId: p.id, change: { case: "delta", value: 0 }, reason: AdjustmentReason.RESTOCK }),
    );
    expect(zero.rawMessage).toBe("delta must not be zero");
    const noChange = await rpcError(h.client.adjustStock({ productId: p.id, reason: AdjustmentReason.RESTOCK }));
    expect(noChange.rawMessage).toBe("change needs delta or set_on_hand");
    const unknown = await rpcError(
      h.client.adjustStock({ productId: randomUUID(), change: { case: "delta", value: 1 }, reason: AdjustmentReason.RESTOCK }),
    );
    expect(unknown.code).toBe(Code.NotFound);
  });

  it("refuses to hold more than the stock limit", async () => {
    const p = await h.product({ initialStock: 1_000_000_000 });
    const err = await rpcError(
      h.client.adjustStock({ productId: p.id, change: { case: "delta", value: 2_000_000_000 }, reason: AdjustmentReason.RESTOCK }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
  });
});

it("keeps serving after the database drops its connections", async () => {
  const p = await h.product();
  await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()`.execute(h.server.db);
  // The pool notices dead connections and opens new ones; no call crashes the process.
  const results = await Promise.allSettled(Array.from({ length: 5 }, () => h.client.getProduct({ productId: p.id })));
  for (const r of results) {
    if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.Unavailable);
  }
  expect((await h.client.getProduct({ productId: p.id })).product?.id).toBe(p.id);
});
