import { randomUUID } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import { sql } from "kysely";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, expect, it, vi } from "vitest";
import { rpcError, startHarness, type Harness } from "./inventory-harness.ts";

/** The lines the server logged about finished calls, as JSON objects. */
const calls: Record<string, unknown>[] = [];
const logger = pino({ level: "debug" }, {
  write: (text: string) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    if (line.msg === "call finished") calls.push(line);
  },
});
const DEBUG = 20;
const INFO = 30;
const ERROR = 50;

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ logger });
});
afterAll(() => h.close());
beforeEach(() => {
  logger.level = "debug";
  calls.length = 0;
});

it("logs a successful call once, at debug, with its procedure, status, duration and the caller's x-request-id", async () => {
  const product = await h.product();
  calls.length = 0;
  await h.client.getProduct({ productId: product.id }, { headers: { "x-request-id": "req-7f3a" } });
  expect(calls).toEqual([
    expect.objectContaining({
      level: DEBUG,
      procedure: "/inventory.v1.InventoryService/GetProduct",
      code: "OK",
      durationMs: expect.any(Number),
      requestId: "req-7f3a",
    }),
  ]);
});

it("logs a refused call at info with its gRPC status, and no request id when the caller sent none", async () => {
  await rpcError(h.client.getProduct({ productId: randomUUID() }));
  expect(calls).toHaveLength(1);
  expect(calls[0]).toMatchObject({ level: INFO, procedure: "/inventory.v1.InventoryService/GetProduct", code: "NOT_FOUND" });
  expect(calls[0]).not.toHaveProperty("requestId");
});

it("logs only the failures at LOG_LEVEL=info", async () => {
  logger.level = "info";
  const product = await h.product();
  await h.client.checkStock({ lines: [{ productId: product.id, quantity: 1 }] });
  await rpcError(h.client.checkStock({ lines: [{ productId: product.id, quantity: 0 }] }));
  expect(calls.map((l) => [l.procedure, l.code])).toEqual([["/inventory.v1.InventoryService/CheckStock", "INVALID_ARGUMENT"]]);
});

it("logs a stream once, when it ends, with how it ended", async () => {
  const health = createClient(Health, createGrpcTransport({ baseUrl: h.server.url }));
  const abort = new AbortController();
  const watching = (async () => {
    for await (const _ of health.watch({}, { signal: abort.signal })) abort.abort();
  })().catch(() => {});
  await watching;
  await vi.waitFor(() =>
    expect(calls).toEqual([expect.objectContaining({ level: INFO, procedure: "/grpc.health.v1.Health/Watch", code: "CANCELED" })]),
  );
});

it("logs a fault of the server at error with the underlying error, which the client never sees", async () => {
  const product = await h.product();
  calls.length = 0;
  await sql`ALTER TABLE stock_levels RENAME TO stock_levels_away`.execute(h.server.db);
  try {
    const err = await rpcError(h.client.getProduct({ productId: product.id }));
    expect([err.code, err.rawMessage]).toEqual([Code.Internal, "internal error"]);
  } finally {
    await sql`ALTER TABLE stock_levels_away RENAME TO stock_levels`.execute(h.server.db);
  }
  expect(calls).toEqual([
    expect.objectContaining({
      level: ERROR,
      procedure: "/inventory.v1.InventoryService/GetProduct",
      code: "INTERNAL",
      err: expect.objectContaining({ message: 'relation "stock_levels" does not exist' }),
    }),
  ]);
});
