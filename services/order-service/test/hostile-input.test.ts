import { randomUUID } from "node:crypto";
import { connect, type Socket } from "node:net";
import { gzipSync } from "node:zlib";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { startInventoryServer, type InventoryServer } from "@ecommerce/inventory-service/src/server.ts";
import { startService, type ServiceProcess } from "@ecommerce/tools/processes.ts";
import { SERVICE_NODE_OPTIONS } from "@ecommerce/tools/runtime.ts";
import { createTestDatabase } from "@ecommerce/tools/testing.ts";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { exchange, http, type RawResponse } from "./raw-http.ts";
import { bearer, ORDER_SERVICE_AUTH_ENV, INVENTORY_AUTH, inventoryAdmin } from "./system.ts";

/**
 * Hostile input at the REST edge, against the order service as a process
 * of its own, over raw sockets so that what Node's HTTP parser refuses is
 * tested too. Every answer must be a problem document with the security
 * headers, come fast, and leave the process up with its memory bounded.
 * The limits are made small here so that each case takes milliseconds.
 */

const LIMITS = {
  BODY_LIMIT_BYTES: 16_384,
  MAX_HEADER_BYTES: 4096,
  HEADERS_TIMEOUT_MS: 400,
  REQUEST_TIMEOUT_MS: 800,
  KEEP_ALIVE_TIMEOUT_MS: 500,
  SHUTDOWN_GRACE_MS: 1000,
  MAX_CONNECTIONS: 120,
};
const ENV = {
  ...Object.fromEntries(Object.entries(LIMITS).map(([name, value]) => [name, String(value)])),
  RECONCILE_INTERVAL_MS: "0",
  RATE_LIMIT_MAX: "0",
  LOG_REQUESTS: "false",
  NODE_OPTIONS: SERVICE_NODE_OPTIONS,
  ...ORDER_SERVICE_AUTH_ENV,
};
/** A customer whose id is as long as user_id may be: orders are placed for the token's subject. */
const LONGEST_USER = "u".repeat(128);
const LONGEST_USER_AUTHORIZATION = await bearer(LONGEST_USER);
/** The service's resident memory must come back under this after every case. */
const RSS_BOUND_MB = 200;

let inventoryServer: InventoryServer;
let sessions: Http2SessionManager;
let service: ServiceProcess;
let ordersDb: string;
let products: string[];

beforeAll(async () => {
  const inventoryDb = await createTestDatabase("hostile_inventory");
  ordersDb = await createTestDatabase("hostile_orders");
  inventoryServer = await startInventoryServer({ databaseUrl: inventoryDb, auth: INVENTORY_AUTH });
  service = await startService("order-service", { ...ENV, DATABASE_URL: ordersDb, INVENTORY_SERVICE_URL: inventoryServer.url });
  sessions = new Http2SessionManager(inventoryServer.url);
  const inventory = createClient(InventoryService, createGrpcTransport({ baseUrl: inventoryServer.url, sessionManager: sessions, interceptors: [inventoryAdmin] }));
  products = await Promise.all(
    Array.from({ length: 101 }, async (_, i) => {
      const { product } = await inventory.createProduct({
        sku: `HOSTILE-${i}-${randomUUID().slice(0, 8)}`,
        name: "Hostile input test product",
        priceMinor: 100n,
        currency: "USD",
        initialStock: 1000,
      });
      return product!.id;
    }),
  );
});

afterAll(async () => {
  sessions?.abort();
  await service?.stop();
  await inventoryServer?.close();
});

// raw-client: the subject of the token raw requests carry.
const order = (lines: number, userId = "raw-client") =>
  ({ user_id: userId, items: products.slice(0, lines).map((product_id) => ({ product_id, quantity: 1 })) });
const post = (body: unknown, headers: Record<string, string> = {}) =>
  http("POST", "/api/v1/orders", headers, typeof body === "string" ? body : JSON.stringify(body));
/** A JSON order padded with spaces to exactly `bytes`. */
const padded = (bytes: number) => {
  const json = JSON.stringify(order(1));
  return json.slice(0, -1) + " ".repeat(bytes - json.length) + "}";
};
const unknownOrder = "0190c0de-0000-7000-8000-00000000beef";

interface Case {
  name: string;
  request: () => Buffer;
  status: number;
  /** The problem code, for an error. */
  code?: string;
  check?: (response: RawResponse) => void;
}

const cases: Case[] = [
  { name: "a body exactly at the limit", request: () => post(padded(LIMITS.BODY_LIMIT_BYTES)), status: 201 },
  { name: "a body one byte over the limit", request: () => post(padded(LIMITS.BODY_LIMIT_BYTES + 1)), status: 413, code: "body_too_large" },
  {
    name: "a declared body far over the limit, never sent",
    request: () => http("POST", "/api/v1/orders", { "content-type": "application/json", "content-length": String(1024 ** 3) }),
    status: 413,
    code: "body_too_large",
  },
  { name: "headers over the limit", request: () => http("GET", "/healthz", { "x-pad": "a".repeat(LIMITS.MAX_HEADER_BYTES) }), status: 431, code: "headers_too_large" },
  { name: "a URL over the header limit", request: () => http("GET", `/api/v1/orders?user_id=${"a".repeat(LIMITS.MAX_HEADER_BYTES)}`), status: 431, code: "headers_too_large" },
  { name: "an order of 100 lines", request: () => post(order(100)), status: 201 },
  {
    name: "an order of 101 lines",
    request: () => post(order(101)),
    status: 400,
    code: "validation_failed",
    check: (r) => expect(JSON.parse(r.body).errors).toEqual([{ field: "/body/items", message: expect.any(String) }]),
  },
  { name: "user_id of 128 characters", request: () => post(order(1, LONGEST_USER), { authorization: LONGEST_USER_AUTHORIZATION }), status: 201 },
  { name: "user_id of 129 characters", request: () => post(order(1, "u".repeat(129))), status: 400, code: "validation_failed" },
  {
    name: "a product_id longer than a UUID",
    request: () => post({ user_id: "raw-client", items: [{ product_id: `${products[0]}${"0".repeat(10_000)}`, quantity: 1 }] }),
    status: 400,
    code: "validation_failed",
  },
  { name: "an Idempotency-Key of 255 characters", request: () => post(order(1), { "idempotency-key": "k".repeat(255) }), status: 201 },
  { name: "an Idempotency-Key of 256 characters", request: () => post(order(1), { "idempotency-key": "k".repeat(256) }), status: 400, code: "validation_failed" },
  { name: "a cursor of 512 characters", request: () => http("GET", `/api/v1/orders?cursor=${"c".repeat(512)}`), status: 400, code: "invalid_cursor" },
  { name: "a cursor of 513 characters", request: () => http("GET", `/api/v1/orders?cursor=${"c".repeat(513)}`), status: 400, code: "validation_failed" },
  { name: "a user_id filter of 128 characters", request: () => http("GET", `/api/v1/orders?user_id=${"u".repeat(128)}`), status: 200 },
  { name: "a user_id filter of 129 characters", request: () => http("GET", `/api/v1/orders?user_id=${"u".repeat(129)}`), status: 400, code: "validation_failed" },
  {
    name: "a date-time filter of 64 characters",
    request: () => http("GET", `/api/v1/orders?created_after=2026-01-01T00:00:00.${"0".repeat(43)}Z`),
    status: 200,
  },
  {
    name: "a date-time filter of 65 characters",
    request: () => http("GET", `/api/v1/orders?created_after=2026-01-01T00:00:00.${"0".repeat(44)}Z`),
    status: 400,
    code: "validation_failed",
  },
  {
    name: "an X-Request-Id of 128 characters is echoed",
    request: () => http("GET", "/healthz", { "x-request-id": "r".repeat(128) }),
    status: 200,
    check: (r) => expect(r.headers["x-request-id"]).toBe("r".repeat(128)),
  },
  {
    name: "an X-Request-Id of 129 characters is replaced",
    request: () => http("GET", "/healthz", { "x-request-id": "r".repeat(129) }),
    status: 200,
    check: (r) => expect(r.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/),
  },
  {
    name: "an unknown body field with a 10,000-character name is quoted within bounds",
    request: () => post({ ...order(1), ["f".repeat(10_000)]: 1 }),
    status: 400,
    code: "validation_failed",
    check: (r) => expect(r.body.length).toBeLessThan(1000),
  },
  {
    name: "thousands of unknown fields are listed within bounds",
    request: () => post({ ...order(1), ...Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`f${i}`, 1])) }),
    status: 400,
    code: "validation_failed",
    check: (r) => {
      const { errors, detail } = JSON.parse(r.body);
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.length).toBeLessThanOrEqual(20);
      expect(errors[0]).toEqual({ field: "/body/f0", message: "is not an accepted field" });
      expect(detail).toMatch(/^\/body\/f0 is not an accepted field \(and \d+ more\)\.$/);
      expect(r.body.length).toBeLessThan(4000);
    },
  },
  {
    name: "an unknown query parameter with a long name is quoted within bounds",
    request: () => http("GET", `/api/v1/orders?${"q".repeat(3000)}=1`),
    status: 400,
    code: "validation_failed",
    check: (r) => expect(r.body.length).toBeLessThan(1000),
  },
  {
    name: "a long content type is quoted within bounds",
    request: () => http("POST", "/api/v1/orders", { "content-type": `text/${"p".repeat(3000)}` }, "x"),
    status: 415,
    code: "unsupported_media_type",
    check: (r) => expect(r.body.length).toBeLessThan(1000),
  },
  {
    name: "a long unknown path is quoted within bounds",
    request: () => http("GET", `/${"p".repeat(3000)}`),
    status: 404,
    code: "route_not_found",
    check: (r) => expect(r.body.length).toBeLessThan(1000),
  },
  {
    name: "an order id far longer than a UUID (past the router's maxParamLength)",
    request: () => http("GET", `/api/v1/orders/${"7".repeat(2000)}`),
    status: 414,
    code: "bad_request",
    check: (r) => expect(r.body.length).toBeLessThan(1000),
  },
  {
    name: "a gzip-encoded body",
    request: () => post(gzipSync(JSON.stringify(order(1))).toString("latin1"), { "content-encoding": "gzip" }),
    status: 415,
    code: "unsupported_media_type",
  },
  { name: "a Content-Length that is not a number", request: () => http("POST", "/api/v1/orders", { "content-length": "abc" }, "{}"), status: 400, code: "bad_request" },
  {
    name: "two different Content-Lengths",
    request: () => Buffer.from(`POST /api/v1/orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}`),
    status: 400,
    code: "bad_request",
  },
  {
    name: "chunked and Content-Length together",
    request: () => http("POST", "/api/v1/orders", { "content-length": "2", "transfer-encoding": "chunked" }, "2\r\n{}\r\n0\r\n\r\n"),
    status: 400,
    code: "bad_request",
  },
  { name: "an unknown method", request: () => http("FROB", "/api/v1/orders"), status: 400, code: "bad_request" },
  { name: "garbage bytes", request: () => Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x01, 0x00, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]), status: 400, code: "bad_request" },
  ...["PUT", "DELETE", "PATCH", "POST"].map(
    (method): Case => ({
      name: `${method} on an order`,
      request: () => http(method, `/api/v1/orders/${unknownOrder}`),
      status: 405,
      code: "method_not_allowed",
      check: (r) => expect(r.headers.allow).toBe("GET, HEAD, OPTIONS"),
    }),
  ),
  {
    name: "GET on a path that only takes POST",
    request: () => http("GET", `/api/v1/orders/${unknownOrder}/cancel`),
    status: 405,
    code: "method_not_allowed",
    check: (r) => expect(r.headers.allow).toBe("OPTIONS, POST"),
  },
  {
    name: "OPTIONS on an order says what it takes",
    request: () => http("OPTIONS", `/api/v1/orders/${unknownOrder}`),
    status: 204,
    check: (r) => expect(r.headers.allow).toBe("GET, HEAD, OPTIONS"),
  },
  {
    name: "HEAD on an order is answered like GET",
    request: () => http("HEAD", `/api/v1/orders/${unknownOrder}`),
    status: 404,
  },
];

/** Asserts what every answer must be, and that the process took it in its stride. */
function expectContract(response: RawResponse, status: number, code?: string) {
  expect(response.status, response.body).toBe(status);
  expect(response.headers["x-content-type-options"]).toBe("nosniff");
  expect(response.headers["content-security-policy"]).toContain("default-src 'self'");
  if (code) {
    expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(response.body)).toMatchObject({ code, status });
  }
  expect(service.alive()).toBe(true);
  expect(service.rssMb()).toBeLessThan(RSS_BOUND_MB);
}

describe("every hostile request gets a fast, bounded answer in the contract", () => {
  test.each(cases)("$name: $status", async ({ request, status, code, check }) => {
    const response = await exchange(service.port, request());
    expectContract(response, status, code);
    // HEAD's 404 is a problem document with its body left off.
    if (code === undefined && status >= 400) expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    check?.(response);
    expect(response.ms).toBeLessThan(1000);
  });

  test("a body declared but never sent is 408 within the request timeout", async () => {
    const response = await exchange(service.port, (socket) =>
      socket.write(http("POST", "/api/v1/orders", { "content-type": "application/json", "content-length": "1000" }, '{"user_id": "slow", ')),
    );
    expectContract(response, 408, "request_timeout");
    expect(response.ms).toBeGreaterThanOrEqual(LIMITS.REQUEST_TIMEOUT_MS - 50);
    expect(response.ms).toBeLessThan(LIMITS.REQUEST_TIMEOUT_MS + 500);
  });

  test("a request head never finished is 408 within the head timeout", async () => {
    const response = await exchange(service.port, (socket) => socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n"));
    expectContract(response, 408, "request_timeout");
    expect(response.ms).toBeLessThan(LIMITS.HEADERS_TIMEOUT_MS + 500);
  });

  test("a connection that sends nothing is closed within the head timeout", async () => {
    const response = await exchange(service.port, () => {});
    expect(response.ms).toBeLessThan(LIMITS.HEADERS_TIMEOUT_MS + 500);
    expect(service.alive()).toBe(true);
  });

  test("a hundred concurrent bodies over the limit are refused without holding memory", async () => {
    const big = padded(LIMITS.BODY_LIMIT_BYTES * 64);
    const responses = await Promise.all(Array.from({ length: 100 }, () => exchange(service.port, post(big))));
    for (const response of responses) expectContract(response, 413, "body_too_large");
  });

  test("connections over MAX_CONNECTIONS are refused at once; the others are served", async () => {
    const extra = 10;
    const started = Date.now();
    const sockets = Array.from({ length: LIMITS.MAX_CONNECTIONS + extra }, () => {
      const socket = connect(service.port, "127.0.0.1");
      socket.on("error", () => {});
      const closed = new Promise<number>((done) => socket.once("close", () => done(Date.now() - started)));
      return { socket, closed };
    });
    // Well before the head timeout, only the refused connections have been closed.
    await new Promise((resolve) => setTimeout(resolve, LIMITS.HEADERS_TIMEOUT_MS / 2));
    const early = await Promise.all(sockets.map(({ closed }) => Promise.race([closed, Promise.resolve(-1)])));
    expect(early.filter((ms) => ms >= 0)).toHaveLength(extra);
    for (const { socket } of sockets) socket.destroy();
    expectContract(await exchange(service.port, http("GET", "/healthz")), 200);
  });

  test("many idle keep-alive connections are closed after the idle timeout", async () => {
    const sockets = await Promise.all(
      Array.from({ length: 100 }, () =>
        new Promise<{ socket: Socket; closed: Promise<number> }>((resolve) => {
          const socket = connect(service.port, "127.0.0.1");
          socket.on("error", () => {});
          const closed = new Promise<number>((done) => socket.once("close", () => done(Date.now())));
          socket.once("data", () => resolve({ socket, closed }));
          socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
        }),
      ),
    );
    const answered = Date.now();
    const closedAt = await Promise.all(sockets.map((s) => s.closed));
    const latest = Math.max(...closedAt) - answered;
    // Node waits a further second (keepAliveTimeoutBuffer) so that a client
    // reusing the connection at the last moment does not race the close.
    expect(latest).toBeGreaterThanOrEqual(LIMITS.KEEP_ALIVE_TIMEOUT_MS - 100);
    expect(latest).toBeLessThan(LIMITS.KEEP_ALIVE_TIMEOUT_MS + 1000 + 500);
    expect(service.alive()).toBe(true);
  });
});

test("none of it was an error on the server's side: nothing logged at error level", () => {
  const errors = service.stderr().split("\n").filter((line) => /"level":(50|60)|Unhandled|uncaught/i.test(line));
  expect(errors).toEqual([]);
});

test("SIGTERM with a slow client open: the process exits within the grace period", async () => {
  // Timeouts longer than the grace period: only the shutdown can end the slow request.
  const other = await startService("order-service", {
    ...ENV,
    HEADERS_TIMEOUT_MS: "60000",
    REQUEST_TIMEOUT_MS: "60000",
    DATABASE_URL: ordersDb,
    INVENTORY_SERVICE_URL: inventoryServer.url,
  });
  const slow = connect(other.port, "127.0.0.1");
  slow.on("error", () => {});
  const slowClosed = new Promise<void>((resolve) => slow.once("close", () => resolve()));
  await new Promise<void>((resolve) => slow.once("connect", () => resolve()));
  slow.write(http("POST", "/api/v1/orders", { "content-type": "application/json", "content-length": "1000" }, "{"));
  await new Promise((resolve) => setTimeout(resolve, 100));

  const started = Date.now();
  await other.stop();
  const took = Date.now() - started;
  await slowClosed;
  expect(took).toBeGreaterThanOrEqual(LIMITS.SHUTDOWN_GRACE_MS - 100);
  expect(took).toBeLessThan(LIMITS.SHUTDOWN_GRACE_MS + 1000);
  expect(other.stderr()).not.toMatch(/Unhandled|uncaught|exiting/i);
});
