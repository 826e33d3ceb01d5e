import { createHmac } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { INVENTORY_API, ORDERS_API } from "@ecommerce/auth/audiences.ts";
import { mintToken, rotateSigningKey } from "@ecommerce/auth/dev-issuer.ts";
import { INVENTORY_READ, INVENTORY_RESERVE, ORDERS_CANCEL_ANY, ORDERS_FULFIL, ORDERS_READ_ALL } from "@ecommerce/auth/scopes.ts";
import { createTestIssuer } from "@ecommerce/tools/test-tokens.ts";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bearer, call, createProduct, issuer, STAFF_SCOPES, startSystem, type TestSystem } from "./system.ts";

let system: TestSystem;
let product: string;

beforeAll(async () => {
  system = await startSystem("authz", { env: { AUTH_KEY_REFETCH_COOLDOWN_SECONDS: "0" } });
  product = await createProduct(system, { stock: 10_000 });
});
afterAll(() => system?.close());

/** The callers of the table: each a way of presenting (or not) a token. */
const CALLERS = {
  anonymous: async () => undefined,
  alice: () => bearer("alice", []),
  bob: () => bearer("bob", []),
  staff: () => bearer("staff", STAFF_SCOPES),
  // A valid token of the same issuer, for inventory: no good here.
  inventory: async () => `Bearer ${await issuer.token("alice", { audience: INVENTORY_API, scopes: [INVENTORY_READ, INVENTORY_RESERVE] })}`,
} as const;
type Caller = keyof typeof CALLERS;

async function as(caller: Caller, url: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const authorization = await CALLERS[caller]();
  // An empty authorization header is no token at all.
  return call(url, { ...init, headers: { ...init.headers, authorization: authorization ?? "" } });
}

/** A confirmed order of alice's. */
async function aliceOrder(): Promise<string> {
  const placed = await as("alice", `${system.api}/orders`, { body: { items: [{ product_id: product, quantity: 1 }] } });
  expect(placed.status).toBe(201);
  return placed.body.id;
}

/** Each endpoint, as a request from a caller (given a fresh order of alice's where it needs one). */
const ENDPOINTS: Record<string, (caller: Caller) => Promise<{ status: number; body: any }>> = {
  "POST /orders": (caller) => as(caller, `${system.api}/orders`, { body: { items: [{ product_id: product, quantity: 1 }] } }),
  "GET /orders": (caller) => as(caller, `${system.api}/orders`),
  "GET /orders/:id (alice's)": async (caller) => as(caller, `${system.api}/orders/${await aliceOrder()}`),
  "POST /orders/:id/cancel (alice's)": async (caller) => as(caller, `${system.api}/orders/${await aliceOrder()}/cancel`, { method: "POST" }),
  "POST /orders/:id/fulfill (alice's)": async (caller) => as(caller, `${system.api}/orders/${await aliceOrder()}/fulfill`, { method: "POST" }),
  "GET /products": (caller) => as(caller, `${system.api}/products`),
  "GET /products/:id": (caller) => as(caller, `${system.api}/products/${product}`),
  "GET /events": (caller) => as(caller, `${system.api}/events`),
};

/** Who may do what: the status each caller gets from each endpoint. */
const TABLE: Record<string, Record<Caller, number>> = {
  "POST /orders": { anonymous: 401, alice: 201, bob: 201, staff: 201, inventory: 401 },
  "GET /orders": { anonymous: 401, alice: 200, bob: 200, staff: 200, inventory: 401 },
  "GET /orders/:id (alice's)": { anonymous: 401, alice: 200, bob: 404, staff: 200, inventory: 401 },
  "POST /orders/:id/cancel (alice's)": { anonymous: 401, alice: 200, bob: 404, staff: 200, inventory: 401 },
  "POST /orders/:id/fulfill (alice's)": { anonymous: 401, alice: 403, bob: 403, staff: 200, inventory: 401 },
  "GET /products": { anonymous: 401, alice: 200, bob: 200, staff: 200, inventory: 401 },
  "GET /products/:id": { anonymous: 401, alice: 200, bob: 200, staff: 200, inventory: 401 },
  "GET /events": { anonymous: 401, alice: 403, bob: 403, staff: 200, inventory: 401 },
};

const CODES: Record<number, string> = { 401: "unauthorized", 403: "forbidden", 404: "order_not_found" };

describe("who may do what", () => {
  const cells = Object.entries(TABLE).flatMap(([endpoint, row]) =>
    (Object.entries(row) as [Caller, number][]).map(([caller, status]) => ({ endpoint, caller, status })),
  );
  test.each(cells)("$endpoint as $caller: $status", async ({ endpoint, caller, status }) => {
    const res = await ENDPOINTS[endpoint]!(caller);
    expect(res.status).toBe(status);
    if (CODES[status]) expect(res.body.code).toBe(CODES[status]);
  });

  test("an order placed by a customer is theirs, whatever the body says", async () => {
    const res = await as("bob", `${system.api}/orders`, { body: { user_id: "bob", items: [{ product_id: product, quantity: 1 }] } });
    expect(res.status).toBe(201);
    expect(res.body.user_id).toBe("bob");
  });

  test("a customer cannot place an order for someone else (403)", async () => {
    const res = await as("alice", `${system.api}/orders`, { body: { user_id: "bob", items: [{ product_id: product, quantity: 1 }] } });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe("forbidden");
  });

  test("a customer lists only their own orders, and naming another customer is 403", async () => {
    await aliceOrder();
    const own = await as("bob", `${system.api}/orders?limit=100`);
    expect(own.body.data.length).toBeGreaterThan(0);
    expect(own.body.data.every((o: { user_id: string }) => o.user_id === "bob")).toBe(true);
    const other = await as("bob", `${system.api}/orders?user_id=alice`);
    expect(other.status).toBe(403);
    expect(other.body.code).toBe("forbidden");
  });

  test("staff list every customer's orders and filter by any customer", async () => {
    const all = await as("staff", `${system.api}/orders?limit=100`);
    const owners = new Set(all.body.data.map((o: { user_id: string }) => o.user_id));
    for (const owner of ["alice", "bob", "staff"]) expect(owners).toContain(owner);
    const alices = await as("staff", `${system.api}/orders?user_id=alice&limit=100`);
    expect(alices.body.data.length).toBeGreaterThan(0);
    expect(alices.body.data.every((o: { user_id: string }) => o.user_id === "alice")).toBe(true);
  });

  test("a missing scope is 403 with an insufficient_scope challenge naming it", async () => {
    const res = await as("alice", `${system.api}/orders/${await aliceOrder()}/fulfill`, { method: "POST" });
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="orders-api", error="insufficient_scope", .*scope="orders:fulfil"/);
    const events = await as("bob", `${system.api}/events`);
    expect(events.headers.get("www-authenticate")).toMatch(/^Bearer realm="orders-api", error="insufficient_scope", .*scope="orders:read_all"/);
  });

  test("the events need orders:read_all alone: the other staff scopes are not enough", async () => {
    const fulfiller = await call(`${system.api}/events`, { headers: { authorization: await bearer("picker", [ORDERS_FULFIL, ORDERS_CANCEL_ANY]) } });
    expect(fulfiller.status).toBe(403);
    const reader = await call(`${system.api}/events`, { headers: { authorization: await bearer("auditor", [ORDERS_READ_ALL]) } });
    expect(reader.status).toBe(200);
    expect(reader.body.data.some((e: { data: { order: { userId: string } } }) => e.data.order.userId === "alice")).toBe(true);
  });

  test("probes, the OpenAPI document and the docs need no token", async () => {
    for (const route of ["/healthz", "/readyz", "/openapi.json", "/docs/"]) {
      expect((await fetch(`${system.root}${route}`)).status, route).toBe(200);
    }
  });
});

/** Base64url of JSON, as in a JWS. */
const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const issuerDir = () => path.dirname(issuer.jwksFile);
const HOUR_MS = 3_600_000;

const BAD_TOKENS: Record<string, () => Promise<string>> = {
  expired: () => mintToken({ dir: issuerDir(), issuer: issuer.issuer, subject: "alice", audience: ORDERS_API, ttlSeconds: 60, now: new Date(Date.now() - HOUR_MS) }),
  "not yet valid": () => mintToken({ dir: issuerDir(), issuer: issuer.issuer, subject: "alice", audience: ORDERS_API, now: new Date(Date.now() + HOUR_MS) }),
  "from another issuer": () => mintToken({ dir: issuerDir(), issuer: "https://other-issuer.test.invalid", subject: "alice", audience: ORDERS_API }),
  "for another audience": () => issuer.token("alice", { audience: "billing-api" }),
  "for inventory": () => issuer.token("order-service", { audience: INVENTORY_API, scopes: [INVENTORY_READ, INVENTORY_RESERVE] }),
  "with alg none": async () => {
    const [, payload] = (await issuer.token("alice", { audience: ORDERS_API })).split(".");
    return `${part({ alg: "none", typ: "JWT" })}.${payload}.`;
  },
  "signed with HMAC using the public key as the secret": async () => {
    const { keys } = JSON.parse(await readFile(issuer.jwksFile, "utf8")) as { keys: { kid: string }[] };
    const [, payload] = (await issuer.token("alice", { audience: ORDERS_API })).split(".");
    const input = `${part({ alg: "HS256", typ: "JWT", kid: keys[0]!.kid })}.${payload}`;
    return `${input}.${createHmac("sha256", JSON.stringify(keys[0])).update(input).digest("base64url")}`;
  },
  "with a tampered payload": async () => {
    const [header, payload, signature] = (await issuer.token("alice", { audience: ORDERS_API })).split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    return `${header}.${part({ ...claims, sub: "bob", scope: STAFF_SCOPES.join(" ") })}.${signature}`;
  },
  "signed by a key the issuer does not publish": async () => (await createTestIssuer()).token("alice", { audience: ORDERS_API }),
  "that is not a JWT": async () => "not-a-jwt",
};

describe("tokens refused at the edge", () => {
  test.each(Object.keys(BAD_TOKENS))("a token %s is 401 with a challenge, and never echoed", async (name) => {
    const token = await BAD_TOKENS[name]!();
    const res = await fetch(`${system.api}/orders`, { headers: { authorization: `Bearer ${token}` } });
    const text = await res.text();
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(text).code).toBe("unauthorized");
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="orders-api", error="invalid_token", error_description="[^"]+"$/);
    for (const piece of token.split(".").filter((p) => p.length > 8)) {
      expect(text).not.toContain(piece);
      expect(res.headers.get("www-authenticate")).not.toContain(piece);
    }
  });

  test("no token, or another scheme, is 401 with the bare challenge", async () => {
    for (const headers of [{}, { authorization: "Basic YWxpY2U6c2VjcmV0" }] as Record<string, string>[]) {
      const res = await fetch(`${system.api}/orders`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="orders-api"');
      expect(((await res.json()) as { code: string }).code).toBe("unauthorized");
    }
  });

  test("a refused request's body is never read", async () => {
    const res = await fetch(`${system.api}/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" });
    expect(res.status).toBe(401);
  });
});

describe("keys", () => {
  test("a rotated-in signing key is accepted without a restart, and the old key's tokens still are", async () => {
    const before = await issuer.token("rotation", { audience: ORDERS_API });
    expect((await fetch(`${system.api}/orders`, { headers: { authorization: `Bearer ${before}` } })).status).toBe(200);
    await rotateSigningKey(issuerDir());
    const after = await issuer.token("rotation", { audience: ORDERS_API });
    expect(JSON.parse(Buffer.from(after.split(".")[0]!, "base64url").toString()).kid).not.toBe(
      JSON.parse(Buffer.from(before.split(".")[0]!, "base64url").toString()).kid,
    );
    expect((await fetch(`${system.api}/orders`, { headers: { authorization: `Bearer ${after}` } })).status).toBe(200);
    expect((await fetch(`${system.api}/orders`, { headers: { authorization: `Bearer ${before}` } })).status).toBe(200);
  });

  test("keys that cannot be loaded are 503, not the caller's fault", async () => {
    const broken = await startSystem("authz_nokeys", { env: { AUTH_JWKS_FILE: path.join(issuerDir(), "missing.json") } });
    try {
      const res = await call(`${broken.api}/orders`);
      expect(res.status).toBe(503);
      expect(res.body.code).toBe("auth_unavailable");
      expect(res.headers.get("retry-after")).not.toBeNull();
    } finally {
      await broken.close();
    }
  });
});

describe("per-caller state", () => {
  test("two customers using the same Idempotency-Key get their own orders", async () => {
    const key = "shared-key-1";
    const body = { items: [{ product_id: product, quantity: 1 }] };
    const alice = await as("alice", `${system.api}/orders`, { body, headers: { "idempotency-key": key } });
    const bob = await as("bob", `${system.api}/orders`, { body, headers: { "idempotency-key": key } });
    expect([alice.status, bob.status]).toEqual([201, 201]);
    expect(bob.body.id).not.toBe(alice.body.id);
    expect(bob.body.user_id).toBe("bob");
    expect(bob.headers.get("idempotent-replayed")).toBeNull();
    const again = await as("alice", `${system.api}/orders`, { body, headers: { "idempotency-key": key } });
    expect(again.body.id).toBe(alice.body.id);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
  });

  test("a replayed placement is the same whether or not the body repeats the caller's user_id", async () => {
    const key = "shared-key-2";
    const first = await as("alice", `${system.api}/orders`, { body: { items: [{ product_id: product, quantity: 2 }] }, headers: { "idempotency-key": key } });
    const again = await as("alice", `${system.api}/orders`, {
      body: { user_id: "alice", items: [{ product_id: product, quantity: 2 }] },
      headers: { "idempotency-key": key },
    });
    expect(again.body.id).toBe(first.body.id);
  });

  test("each subject has its own rate limit budget", async () => {
    const limited = await startSystem("authz_rate", { env: { RATE_LIMIT_MAX: "3", RATE_LIMIT_WINDOW_MS: "60000" } });
    try {
      const list = async (subject: string) => (await call(`${limited.api}/orders`, { headers: { authorization: await bearer(subject, []) } })).status;
      const alice = [await list("alice"), await list("alice"), await list("alice"), await list("alice")];
      expect(alice).toEqual([200, 200, 200, 429]);
      expect(await list("bob")).toBe(200);
      // Anonymous callers spend their address's budget, not a subject's.
      expect((await fetch(`${limited.api}/orders`)).status).toBe(401);
    } finally {
      await limited.close();
    }
  });
});
