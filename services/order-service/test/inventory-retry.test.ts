import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { afterAll, beforeAll, beforeEach, expect, test } from "vitest";
import { retryUnavailable } from "../src/plugins/inventory-retry.ts";

/** An inventory stand-in on a real HTTP/2 port that fails as told and records each attempt's grpc-timeout. */
let server: http2.Http2Server;
let sessions: Http2SessionManager;
let client: Client<typeof InventoryService>;
let failures: { remaining: number; code: Code };
let attempts: { method: string; timeoutMs: number }[];

beforeAll(async () => {
  const fail = (method: string, timeout: string | null) => {
    attempts.push({ method, timeoutMs: Number(timeout?.replace(/m$/, "")) });
    if (failures.remaining-- > 0) throw new ConnectError("not now", failures.code);
  };
  server = http2.createServer(
    connectNodeAdapter({
      routes: (router) =>
        router.service(InventoryService, {
          reserveStock: (req, ctx) => {
            fail("ReserveStock", ctx.requestHeader.get("grpc-timeout"));
            return { reservation: { orderId: req.orderId } };
          },
          createProduct: (_req, ctx) => {
            fail("CreateProduct", ctx.requestHeader.get("grpc-timeout"));
            return {};
          },
        }),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sessions = new Http2SessionManager(url);
  client = createClient(
    InventoryService,
    createGrpcTransport({ baseUrl: url, sessionManager: sessions, interceptors: [retryUnavailable({ baseDelayMs: 20 })] }),
  );
});
afterAll(async () => {
  sessions?.abort();
  await new Promise((resolve) => server?.close(resolve));
});
beforeEach(() => {
  failures = { remaining: 0, code: Code.Unavailable };
  attempts = [];
});

const reserve = (timeoutMs: number) =>
  client.reserveStock({ orderId: "o-1", lines: [{ productId: "p-1", quantity: 1 }] }, { timeoutMs });
/** The error a call fails with. */
const failure = (call: Promise<unknown>) =>
  call.then(
    () => {
      throw new Error("the call succeeded");
    },
    (e: unknown) => ConnectError.from(e),
  );

test("retries an idempotent call while inventory is unavailable, each attempt with only the time that remains", async () => {
  failures = { remaining: 2, code: Code.Unavailable };

  const { reservation } = await reserve(2000);

  expect(reservation?.orderId).toBe("o-1");
  expect(attempts).toHaveLength(3);
  const timeouts = attempts.map((a) => a.timeoutMs);
  expect(timeouts[0]).toBeLessThanOrEqual(2000);
  expect(timeouts[1]).toBeLessThan(timeouts[0] ?? 0);
  expect(timeouts[2]).toBeLessThan(timeouts[1] ?? 0);
});

test("stops retrying at the caller's deadline", async () => {
  failures = { remaining: Number.POSITIVE_INFINITY, code: Code.Unavailable };

  const started = performance.now();
  const error = await failure(reserve(300));
  const elapsed = performance.now() - started;

  expect([Code.Unavailable, Code.DeadlineExceeded]).toContain(error.code);
  expect(attempts.length).toBeGreaterThan(1);
  expect(elapsed).toBeLessThan(300 + 150);
});

test("never retries a call that is not idempotent, nor an error retrying cannot fix", async () => {
  failures = { remaining: 1, code: Code.Unavailable };
  const create = await failure(client.createProduct({ sku: "X" }, { timeoutMs: 1000 }));
  expect(create).toMatchObject({ code: Code.Unavailable });

  failures = { remaining: 1, code: Code.FailedPrecondition };
  const short = await failure(reserve(1000));
  expect(short).toMatchObject({ code: Code.FailedPrecondition });

  expect(attempts.map((a) => a.method)).toEqual(["CreateProduct", "ReserveStock"]);
});
