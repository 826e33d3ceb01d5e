import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bearer, createProduct, startSystem, type TestSystem } from "./system.ts";

let system: TestSystem;
let product: string;

beforeAll(async () => {
  system = await startSystem("badinput", { env: { BODY_LIMIT_BYTES: "16384" } });
  product = await createProduct(system, { stock: 10 });
});
afterAll(() => system?.close());

const uuid = "0190c0de-0000-7000-8000-000000000000";
const item = (over: Record<string, unknown> = {}) => ({ product_id: product, quantity: 1, ...over });

interface Case {
  name: string;
  method?: string;
  path?: string;
  contentType?: string;
  /** A raw string is sent as is; anything else as JSON. A function is called once the product exists. */
  body?: unknown | (() => unknown);
  status: number;
  code: string;
  /** The field the problem must name, when it is about one. */
  field?: string;
}

const cases: Case[] = [
  { name: "malformed JSON", body: '{"user_id": "u", "items": [', status: 400, code: "malformed_json" },
  { name: "an empty JSON body", body: "", status: 400, code: "validation_failed", field: "/body" },
  { name: "a JSON array instead of an object", body: [], status: 400, code: "validation_failed", field: "/body" },
  { name: "an empty user_id", body: () => ({ user_id: "", items: [item()] }), status: 400, code: "validation_failed", field: "/body/user_id" },
  { name: "a user_id too long", body: () => ({ user_id: "u".repeat(129), items: [item()] }), status: 400, code: "validation_failed", field: "/body/user_id" },
  { name: "a user_id of the wrong type", body: () => ({ user_id: 42, items: [item()] }), status: 400, code: "validation_failed", field: "/body/user_id" },
  { name: "a quantity as a string", body: () => ({ user_id: "u", items: [item({ quantity: "2" })] }), status: 400, code: "validation_failed", field: "/body/items/0/quantity" },
  { name: "a fractional quantity", body: () => ({ user_id: "u", items: [item({ quantity: 1.5 })] }), status: 400, code: "validation_failed", field: "/body/items/0/quantity" },
  { name: "a zero quantity", body: () => ({ user_id: "u", items: [item({ quantity: 0 })] }), status: 400, code: "validation_failed", field: "/body/items/0/quantity" },
  { name: "a negative quantity", body: () => ({ user_id: "u", items: [item({ quantity: -3 })] }), status: 400, code: "validation_failed", field: "/body/items/0/quantity" },
  { name: "a huge quantity", body: () => ({ user_id: "u", items: [item({ quantity: 1e12 })] }), status: 400, code: "validation_failed", field: "/body/items/0/quantity" },
  { name: "no items", body: { user_id: "u", items: [] }, status: 400, code: "validation_failed", field: "/body/items" },
  { name: "items not an array", body: { user_id: "u", items: { product_id: uuid } }, status: 400, code: "validation_failed", field: "/body/items" },
  { name: "more than 100 items", body: { user_id: "u", items: Array.from({ length: 101 }, () => ({ product_id: uuid, quantity: 1 })) }, status: 400, code: "validation_failed", field: "/body/items" },
  { name: "a product id that is not a UUID", body: { user_id: "u", items: [{ product_id: "laptop", quantity: 1 }] }, status: 400, code: "validation_failed", field: "/body/items/0/product_id" },
  { name: "an unknown field on the order", body: () => ({ user_id: "u", items: [item()], coupon: "FREE" }), status: 400, code: "validation_failed", field: "/body/coupon" },
  { name: "a client-set price", body: () => ({ user_id: "u", items: [item({ unit_price_minor: 1 })] }), status: 400, code: "validation_failed", field: "/body/items/0/unit_price_minor" },
  { name: "the same product twice", body: () => ({ user_id: "u", items: [item(), item({ quantity: 2 })] }), status: 422, code: "duplicate_product" },
  { name: "an oversized body", body: () => ({ user_id: "u".repeat(20_000), items: [item()] }), status: 413, code: "body_too_large" },
  { name: "a text/plain body", contentType: "text/plain", body: "hello", status: 415, code: "unsupported_media_type" },
  { name: "a form body", contentType: "application/x-www-form-urlencoded", body: "user_id=u", status: 415, code: "unsupported_media_type" },
  { name: "a non-UUID order id", method: "GET", path: "/orders/123", status: 400, code: "validation_failed", field: "/params/id" },
  { name: "a non-UUID id to cancel", path: "/orders/abc/cancel", status: 400, code: "validation_failed", field: "/params/id" },
  { name: "a non-UUID product id", method: "GET", path: "/products/laptop", status: 400, code: "validation_failed", field: "/params/id" },
  { name: "a limit of 0", method: "GET", path: "/orders?limit=0", status: 400, code: "validation_failed", field: "/querystring/limit" },
  { name: "a limit over 100", method: "GET", path: "/orders?limit=101", status: 400, code: "validation_failed", field: "/querystring/limit" },
  { name: "a limit that is not a number", method: "GET", path: "/orders?limit=ten", status: 400, code: "validation_failed", field: "/querystring/limit" },
  { name: "an unknown status filter", method: "GET", path: "/orders?status=shipped", status: 400, code: "validation_failed", field: "/querystring/status" },
  { name: "an unknown query parameter", method: "GET", path: "/orders?colour=red", status: 400, code: "validation_failed", field: "/querystring/colour" },
  { name: "a forged cursor", method: "GET", path: `/orders?cursor=${Buffer.from("o1:nope").toString("base64url")}`, status: 400, code: "invalid_cursor" },
  { name: "a forged cursor with an impossible date", method: "GET", path: `/orders?cursor=${Buffer.from(`o2 2024-02-30T00:00:00.000000Z ${uuid}`).toString("base64url")}`, status: 400, code: "invalid_cursor" },
  { name: "a NUL character in user_id", body: () => ({ user_id: "a\u0000b", items: [item()] }), status: 400, code: "validation_failed", field: "/body/user_id" },
  { name: "a NUL character in the user_id filter", method: "GET", path: "/orders?user_id=a%00b", status: 400, code: "validation_failed", field: "/querystring/user_id" },
  { name: "a date before year 1 in created_after", method: "GET", path: "/orders?created_after=0000-01-01T00:00:00Z", status: 400, code: "bad_request" },
  { name: "an unknown route", method: "GET", path: "/nowhere", status: 404, code: "route_not_found" },
  { name: "a method a known path does not take", method: "DELETE", path: `/orders/${uuid}`, status: 405, code: "method_not_allowed" },
];

describe("bad input gets a clear 4xx problem, never a 500", () => {
  test.each(cases)("$name → $status $code", async (c) => {
    const raw = typeof c.body === "function" ? c.body() : c.body;
    const method = c.method ?? "POST";
    const res = await fetch(`${system.api}${c.path ?? "/orders"}`, {
      method,
      // A customer "u", whom the bodies name.
      headers: { authorization: await bearer("u"), ...(raw === undefined ? {} : { "content-type": c.contentType ?? "application/json" }) },
      body: raw === undefined ? undefined : typeof raw === "string" ? raw : JSON.stringify(raw),
    });
    const problem = (await res.json()) as { detail: string; errors?: unknown };

    expect(res.status).toBe(c.status);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(problem).toMatchObject({ status: c.status, code: c.code, type: expect.any(String), title: expect.any(String) });
    expect(problem.detail).toEqual(expect.any(String));
    if (c.field) {
      expect(problem.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: c.field })]));
      expect(problem.detail).toContain(c.field);
    }
  });
});
