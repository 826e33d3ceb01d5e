import { randomUUID } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { Compile } from "typebox/compile";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { ErrorCode } from "../src/errors.ts";
import { PROBLEM_TYPES } from "../src/plugins/problems.ts";
import { COMPONENT_SCHEMAS } from "../src/routes/schemas.ts";
import { exchange, http } from "./raw-http.ts";
import { bearer, call, createProduct, startSystem, type TestSystem } from "./system.ts";

let system: TestSystem;
let doc: any;
let plenty: string;
let none: string;
const seen = new Set<string>();

beforeAll(async () => {
  // Each request comes from its own client address (X-Forwarded-For), so
  // only the rate limiting case uses up a budget.
  system = await startSystem("problems", {
    env: {
      RECONCILE_INTERVAL_MS: "0",
      BODY_LIMIT_BYTES: "4096",
      RATE_LIMIT_MAX: "5",
      TRUST_PROXY: "true",
      INVENTORY_TIMEOUT_MS: "1000",
      HEADERS_TIMEOUT_MS: "300",
      REQUEST_TIMEOUT_MS: "300",
      // No order waits for a busy step: the overloaded case needs only two orders.
      ORDER_QUEUE_MAX: "0",
    },
  });
  doc = await (await fetch(`${system.root}/openapi.json`)).json();
  plenty = await createProduct(system, { stock: 100 });
  none = await createProduct(system, { stock: 0 });
});
afterAll(() => system?.close());

const isProblem = Compile(COMPONENT_SCHEMAS.find((s) => (s as { $id?: string }).$id === "Problem")!);

interface Request {
  method?: string;
  path: string;
  /** Sent as is when a string, as JSON otherwise. */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  client?: string;
  /** Refused before any route is matched, so no operation documents it. */
  unrouted?: boolean;
}

/** A request from `client`, with a staff token whose subject is that client unless `headers` has an authorization of its own. */
async function send({ method = "GET", path, body, contentType = "application/json", headers, client = randomClient() }: Request) {
  const res = await fetch(`${system.root}${path}`, {
    method,
    headers: {
      "x-forwarded-for": client,
      authorization: await bearer(`client-${client}`),
      ...(body === undefined ? {} : { "content-type": contentType }),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function randomClient(): string {
  const octet = () => Math.floor(Math.random() * 250) + 1;
  return `10.${octet()}.${octet()}.${octet()}`;
}

/** The documented operation a path and method belong to, if any. */
function operationOf(method: string, path: string): any {
  const bare = path.split("?")[0]!;
  for (const [template, item] of Object.entries(doc.paths as Record<string, any>)) {
    const pattern = new RegExp(`^${template.replace(/\{\w+\}/g, "[^/]+")}$`);
    if (pattern.test(bare) && item[method.toLowerCase()]) return item[method.toLowerCase()];
  }
  return undefined;
}

/** Asserts `res` is the problem document of `code` as documented, and records the code as seen. */
function expectProblem(request: Request, res: { status: number; headers: Headers; text: string }, code: ErrorCode) {
  const body = JSON.parse(res.text);
  expect(res.status).toBe(PROBLEM_TYPES[code].status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(isProblem.Check(body), JSON.stringify([...isProblem.Errors(body)])).toBe(true);
  expect(body).toMatchObject({ code, status: res.status, type: `urn:problem-type:ecommerce:${code}`, title: PROBLEM_TYPES[code].title });
  expect(res.text).not.toMatch(/\bat .*\.ts:\d+|node_modules|select |insert |relation "/i);
  expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  const operation = request.unrouted ? undefined : operationOf(request.method ?? "GET", request.path);
  if (operation) {
    const documented = operation.responses[String(res.status)]?.content["application/problem+json"].examples;
    expect(Object.keys(documented ?? {}), `${request.method ?? "GET"} ${request.path} documents ${code}`).toContain(code);
  }
  seen.add(code);
  return body;
}

const order = (items: unknown) => ({ items });
/** A customer without staff scopes. */
const CUSTOMER = await bearer("problems", []);
const unknownId = "0190c0de-0000-7000-8000-00000000beef";

const cases: { code: ErrorCode; name: string; request: () => Request }[] = [
  { code: "unauthorized", name: "no bearer token", request: () => ({ path: "/api/v1/orders", headers: { authorization: "" } }) },
  { code: "unauthorized", name: "a token that is not a JWT", request: () => ({ path: "/api/v1/products", headers: { authorization: "Bearer nope" } }) },
  { code: "forbidden", name: "a customer fulfilling an order", request: () => ({ method: "POST", path: `/api/v1/orders/${unknownId}/fulfill`, headers: { authorization: CUSTOMER } }) },
  { code: "forbidden", name: "a customer listing another customer's orders", request: () => ({ path: "/api/v1/orders?user_id=someone-else", headers: { authorization: CUSTOMER } }) },
  { code: "validation_failed", name: "a path parameter that is not a UUID", request: () => ({ path: "/api/v1/orders/123" }) },
  { code: "validation_failed", name: "an invalid body field", request: () => ({ method: "POST", path: "/api/v1/orders", body: order([{ product_id: plenty, quantity: 0 }]) }) },
  { code: "validation_failed", name: "an Idempotency-Key too long", request: () => ({ method: "POST", path: `/api/v1/orders/${unknownId}/cancel`, headers: { "idempotency-key": "k".repeat(256) } }) },
  { code: "malformed_json", name: "a body that is not JSON", request: () => ({ method: "POST", path: "/api/v1/orders", body: '{"user_id": ' }) },
  { code: "invalid_cursor", name: "a cursor the API did not make", request: () => ({ path: "/api/v1/orders?cursor=bm9wZQ" }) },
  { code: "invalid_cursor", name: "a products cursor the API did not make", request: () => ({ path: "/api/v1/products?cursor=bm9wZQ" }) },
  { code: "invalid_cursor", name: "an events cursor the API did not make", request: () => ({ path: "/api/v1/events?cursor=bm9wZQ" }) },
  { code: "forbidden", name: "a customer reading the events", request: () => ({ path: "/api/v1/events", headers: { authorization: CUSTOMER } }) },
  { code: "bad_request", name: "a URL that cannot be decoded", request: () => ({ path: "/api/v1/orders/%E0%A4%A", unrouted: true }) },
  { code: "route_not_found", name: "an unknown path", request: () => ({ path: "/api/v2/orders" }) },
  { code: "method_not_allowed", name: "a method the path does not take", request: () => ({ method: "DELETE", path: `/api/v1/orders/${unknownId}` }) },
  { code: "order_not_found", name: "an unknown order", request: () => ({ path: `/api/v1/orders/${unknownId}` }) },
  { code: "order_not_found", name: "cancelling an unknown order", request: () => ({ method: "POST", path: `/api/v1/orders/${unknownId}/cancel` }) },
  { code: "product_not_found", name: "an unknown product", request: () => ({ path: `/api/v1/products/${unknownId}` }) },
  { code: "insufficient_stock", name: "a line with too little stock", request: () => ({ method: "POST", path: "/api/v1/orders", body: order([{ product_id: none, quantity: 1 }]) }) },
  { code: "body_too_large", name: "a body over BODY_LIMIT_BYTES", request: () => ({ method: "POST", path: "/api/v1/orders", body: { user_id: "x".repeat(5000), items: [] } }) },
  { code: "unsupported_media_type", name: "a form body", request: () => ({ method: "POST", path: "/api/v1/orders", body: "user_id=x", contentType: "application/x-www-form-urlencoded" }) },
  { code: "unsupported_media_type", name: "a text body to cancel", request: () => ({ method: "POST", path: `/api/v1/orders/${unknownId}/cancel`, body: "please", contentType: "text/plain" }) },
  { code: "duplicate_product", name: "a product twice", request: () => ({ method: "POST", path: "/api/v1/orders", body: order([{ product_id: plenty, quantity: 1 }, { product_id: plenty, quantity: 1 }]) }) },
  { code: "unknown_product", name: "a product inventory does not know", request: () => ({ method: "POST", path: "/api/v1/orders", body: order([{ product_id: unknownId, quantity: 1 }]) }) },
];

describe("every error is a problem document with its documented code", () => {
  test.each(cases)("$code: $name", async ({ code, request }) => {
    const r = request();
    const body = expectProblem(r, await send(r), code);
    if (code === "validation_failed") {
      expect(body.errors).toEqual([expect.objectContaining({ field: expect.stringMatching(/^\/(params|body|headers)\//) })]);
    }
  });

  test("order_rejected: products priced in different currencies", async () => {
    const euros = await createProduct(system, { stock: 5, currency: "EUR" });
    const request = { method: "POST", path: "/api/v1/orders", body: order([{ product_id: plenty, quantity: 1 }, { product_id: euros, quantity: 1 }]) };
    expectProblem(request, await send(request), "order_rejected");
  });

  test("auth_unavailable: the issuer's keys cannot be loaded, with Retry-After", async () => {
    const keyless = await startSystem("problems_nokeys", { env: { AUTH_JWKS_FILE: "/nonexistent/jwks.json" } });
    try {
      const res = await call(`${keyless.api}/orders`);
      expectProblem({ path: "/api/v1/orders" }, { status: res.status, headers: res.headers, text: JSON.stringify(res.body) }, "auth_unavailable");
      expect(res.headers.get("retry-after")).toBe("2");
    } finally {
      await keyless.close();
    }
  });

  test("status_conflict: cancelling a fulfilled order", async () => {
    const placed = JSON.parse((await send({ method: "POST", path: "/api/v1/orders", body: order([{ product_id: plenty, quantity: 1 }]) })).text);
    await send({ method: "POST", path: `/api/v1/orders/${placed.id}/fulfill` });
    const request = { method: "POST", path: `/api/v1/orders/${placed.id}/cancel` };
    const body = expectProblem(request, await send(request), "status_conflict");
    expect(body.order_status).toBe("fulfilled");
  });

  test("idempotency_key_reused: the same key with another body", async () => {
    const key = randomUUID();
    // Keys are the caller's: both requests come from one client.
    const first = { method: "POST", path: "/api/v1/orders", body: order([{ product_id: plenty, quantity: 1 }]), headers: { "idempotency-key": key }, client: "192.0.2.20" };
    expect((await send(first)).status).toBe(201);
    const request = { ...first, body: order([{ product_id: plenty, quantity: 2 }]) };
    expectProblem(request, await send(request), "idempotency_key_reused");
  });

  test("idempotency_key_in_flight: the same key while its first request still waits for inventory", async () => {
    // Inventory's port accepts connections and never answers: the first request holds its key until the deadline.
    await system.stopInventory();
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(system.inventoryServer.port, "127.0.0.1", resolve));
    try {
      const request = { method: "POST", path: "/api/v1/orders", body: order([{ product_id: plenty, quantity: 1 }]), headers: { "idempotency-key": randomUUID() }, client: "192.0.2.21" };
      const first = send(request);
      await sleep(200);
      expectProblem(request, await send(request), "idempotency_key_in_flight");
      expect((await first).status).toBe(503);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
      await system.startInventory();
    }
  });

  test("rate_limited: one client over its budget, with Retry-After; other clients unaffected", async () => {
    const request = { path: "/api/v1/orders?limit=1", client: "192.0.2.7" };
    const statuses: number[] = [];
    let last = await send(request);
    for (let i = 0; i < 5; i++) {
      statuses.push(last.status);
      last = await send(request);
    }

    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    expectProblem(request, last, "rate_limited");
    expect(Number(last.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await send({ ...request, client: "192.0.2.8" })).status).toBe(200);
  });

  test("inventory_unavailable and not_ready: inventory is down, with Retry-After", async () => {
    await system.stopInventory();
    try {
      const products = { path: "/api/v1/products" };
      const unavailable = await send(products);
      expectProblem(products, unavailable, "inventory_unavailable");
      expect(unavailable.headers.get("retry-after")).toBe("2");

      const probe = { path: "/readyz" };
      expectProblem(probe, await send(probe), "not_ready");
    } finally {
      await system.startInventory();
    }
  });

  test("internal_error: a defect answers 500 without its cause (no SQL, no stack)", async () => {
    const db = new pg.Client(system.ordersDatabaseUrl);
    await db.connect();
    await db.query("ALTER TABLE orders RENAME TO orders_gone");
    try {
      const request = { path: `/api/v1/orders/${unknownId}` };
      const body = expectProblem(request, await send(request), "internal_error");
      expect(body.detail).toBe("Something went wrong on our side. It has been logged.");
      expect(Object.keys(body).sort()).toEqual(["code", "detail", "status", "title", "type"]);
    } finally {
      await db.query("ALTER TABLE orders_gone RENAME TO orders");
      await db.end();
    }
  });

  test("database_unavailable: the orders database refuses connections, with Retry-After", async () => {
    const admin = new URL(system.ordersDatabaseUrl);
    const name = admin.pathname.slice(1);
    admin.pathname = "/postgres";
    const db = new pg.Client(admin.toString());
    await db.connect();
    await db.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
    await db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name]);
    try {
      const request = { path: `/api/v1/orders/${unknownId}` };
      let answer = await send(request);
      // A pooled connection may learn of its end on this first request.
      if (answer.status === 500) answer = await send(request);
      expectProblem(request, answer, "database_unavailable");
      expect(answer.headers.get("retry-after")).toBe("2");
    } finally {
      await db.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);
      await db.end();
    }
  });

  // Refused by Node's HTTP parser or its timers, before Fastify sees a request.
  test.each([
    { code: "headers_too_large" as const, name: "a head over the header limit", bytes: () => http("GET", "/healthz", { "x-pad": "a".repeat(20_000) }) },
    { code: "request_timeout" as const, name: "a body that never comes", bytes: () => http("POST", "/api/v1/orders", { "content-type": "application/json", "content-length": "100" }, "{") },
    { code: "bad_request" as const, name: "a malformed Content-Length", bytes: () => http("POST", "/api/v1/orders", { "content-length": "1x" }, "{}") },
  ])("$code: $name", async ({ code, bytes }) => {
    const { port } = new URL(system.root);
    const res = await exchange(Number(port), bytes());
    expectProblem({ path: "/", unrouted: true }, { status: res.status, headers: new Headers(res.headers), text: res.body }, code);
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
  });

  test("overloaded: a step's queue is full, with Retry-After", async () => {
    const reserveOrders = system.app.inventory.reserveOrders;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const reserving = new Promise<void>((resolve) => (entered = resolve));
    system.app.inventory.reserveOrders = (async (...args: Parameters<typeof reserveOrders>) => {
      entered();
      await gate;
      return reserveOrders(...args);
    }) as typeof reserveOrders;
    try {
      const placement = { method: "POST", path: "/api/v1/orders", body: order([{ product_id: plenty, quantity: 1 }]) };
      const held = send(placement);
      await reserving;
      // The first order's reservation is in flight; the next finds a step busy and nowhere to wait.
      let answer = await send(placement);
      for (let i = 0; i < 20 && answer.status !== 503; i++) answer = await send(placement);
      expectProblem(placement, answer, "overloaded");
      expect(answer.headers.get("retry-after")).toBe("2");
      release();
      expect((await held).status).toBe(201);
    } finally {
      release();
      system.app.inventory.reserveOrders = reserveOrders;
    }
  });

  test("covers every documented code", () => {
    expect([...seen].sort()).toEqual(Object.keys(PROBLEM_TYPES).sort());
  });
});
