import { randomUUID } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { INVENTORY_READ } from "@ecommerce/auth/scopes.ts";
import { Health } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import { create, toBinary } from "@bufbuild/protobuf";
import { CheckStockRequestSchema, ReservationStatus } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { lockStockRow, rpcError, startHarness, stockInconsistencies, type Harness } from "./inventory-harness.ts";
import { envelope, h2Request } from "./raw-http2.ts";

/** The server's log lines, as JSON objects. */
const logs: Record<string, unknown>[] = [];
const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(JSON.parse(line)) });

const RESERVE = "/inventory.v1.InventoryService/ReserveStock";
/** The first ReserveStock line the server logged after the first `after` lines. */
const finishedReserve = (after: number) => logs.slice(after).find((l) => l.procedure === RESERVE);

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ logger, limits: { maxCallMs: 400 } });
});
afterAll(() => h.close());

async function reservationOf(orderId: string) {
  return h.server.db.selectFrom("reservations").selectAll().where("order_id", "=", orderId).executeTakeFirst();
}

describe("a ReserveStock whose deadline passes while it waits for a lock", () => {
  it("answers DEADLINE_EXCEEDED and leaves no partial reservation; the order can try again", async () => {
    const product = await h.product({ initialStock: 5 });
    const orderId = randomUUID();
    const lines = [{ productId: product.id, quantity: 2 }];
    const release = await lockStockRow(h.server, product.id);
    const logged = logs.length;

    const err = await rpcError(h.client.reserveStock({ orderId, lines }, { timeoutMs: 100 }));
    expect(err.code).toBe(Code.DeadlineExceeded);

    // The server was waiting for the stock row. It must give up by itself at
    // the deadline, not take the row once it is free a while later.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await release();
    const line = await vi.waitFor(() => finishedReserve(logged) ?? Promise.reject(new Error("not finished yet")));
    // The client's deadline, or its cancellation right after, whichever the server saw first.
    expect(["DEADLINE_EXCEEDED", "CANCELED"]).toContain(line.code);
    expect(await reservationOf(orderId)).toBeUndefined();
    expect((await h.client.getProduct({ productId: product.id })).product?.stock).toMatchObject({ onHand: 5, reserved: 0 });
    expect(await stockInconsistencies(h.server)).toEqual([]);

    const retry = await h.client.reserveStock({ orderId, lines });
    expect(retry.reservation?.status).toBe(ReservationStatus.RESERVED);
  });
});

describe("the server's cap on call time (GRPC_MAX_TIMEOUT_MS)", () => {
  it("ends a call without a deadline that runs past the cap as DEADLINE_EXCEEDED, reserving nothing", async () => {
    const product = await h.product({ initialStock: 5 });
    const orderId = randomUUID();
    const release = await lockStockRow(h.server, product.id);
    setTimeout(() => void release(), 600);

    const err = await rpcError(h.client.reserveStock({ orderId, lines: [{ productId: product.id, quantity: 1 }] }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    // The cap ends the call, or the lock wait it bounded ends first.
    expect(err.rawMessage).toMatch(/took longer than the server allows \(400 ms\)|deadline passed while it waited for stock locks/);
    expect(await reservationOf(orderId)).toBeUndefined();
    expect(await stockInconsistencies(h.server)).toEqual([]);
  });

  it("lets a call with a longer deadline run until the cap, not refuse it", async () => {
    const product = await h.product({ initialStock: 5 });
    const { reservation } = await h.client.reserveStock(
      { orderId: randomUUID(), lines: [{ productId: product.id, quantity: 1 }] },
      { timeoutMs: 60_000 },
    );
    expect(reservation?.status).toBe(ReservationStatus.RESERVED);
  });

  it("leaves health Watch streams open past the cap", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: h.server.url }));
    const abort = new AbortController();
    const received: number[] = [];
    const watching = (async () => {
      for await (const { status } of health.watch({}, { signal: abort.signal })) received.push(status);
    })().catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 800));
    abort.abort();
    const ended = await watching;
    expect(received.length).toBeGreaterThan(0);
    // Ended by this client, not by the server.
    expect((ended as { code?: Code }).code).toBe(Code.Canceled);
  });

  it("serves a call whose deadline is past 2^31 ms, and logs it as it ended, without a timer overflow", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const product = await h.product();
      const after = logs.length;
      const body = toBinary(CheckStockRequestSchema, create(CheckStockRequestSchema, { lines: [{ productId: product.id, quantity: 1 }] }));
      const answer = await h2Request(
        h.server.url,
        {
          ":path": "/inventory.v1.InventoryService/CheckStock",
          "content-type": "application/grpc",
          te: "trailers",
          "grpc-timeout": "99999999H",
          authorization: `Bearer ${await h.token("reader", [INVENTORY_READ])}`,
        },
        envelope(body),
      );
      expect(answer.grpcStatus).toBe(0);
      await vi.waitFor(() => expect(logs.slice(after).find((l) => l.procedure === "/inventory.v1.InventoryService/CheckStock")).toMatchObject({ code: "OK" }));
      expect(warnings.filter((w) => w.name === "TimeoutOverflowWarning")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});
