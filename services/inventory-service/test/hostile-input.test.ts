import { randomUUID } from "node:crypto";
import http2 from "node:http2";
import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { INVENTORY_ADMIN } from "@ecommerce/auth/scopes.ts";
import { Health, HealthCheckRequestSchema } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import {
  AdjustmentReason,
  CheckStockRequestSchema,
  CreateProductRequestSchema,
  InventoryService,
} from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { startService, type ServiceProcess } from "@ecommerce/tools/processes.ts";
import { SERVICE_NODE_OPTIONS } from "@ecommerce/tools/runtime.ts";
import { createTestDatabase } from "@ecommerce/tools/testing.ts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DEFAULT_LIMITS } from "../src/config.ts";
import * as contents from "../src/stock/limits.ts";
import { encodePageToken } from "../src/stock/page-token.ts";
import { ALL_INVENTORY_SCOPES, bearer, TEST_OPERATOR, testCredentials } from "./inventory-harness.ts";
import { envelope, FRAME, h2Request, rawConnection, type RawConnection } from "./raw-http2.ts";

// The gRPC edge of the real service process against input meant to hurt
// it. Every case checks the answer, that the process is still up, and that
// its memory is back under a bound. The message size bound is the default
// (1 MiB); time bounds are short so that the file runs in seconds.

const MAX_REQUEST_BYTES = DEFAULT_LIMITS.maxRequestBytes;
const MAX_CONNECTIONS = 150;
const IDLE_TIMEOUT_MS = 1000;
const REQUEST_BODY_TIMEOUT_MS = 1000;
const KEEPALIVE_MS = 500;
const SHUTDOWN_TIMEOUT_MS = 300;
/** Resident memory the process must be back under after every case. */
const RSS_BOUND_MB = 220;
/** Longest message a refusal may have, whatever the request held. */
const MAX_MESSAGE_LENGTH = 4000;

const CHECK_STOCK = "/inventory.v1.InventoryService/CheckStock";
const LIST_PRODUCTS = "/inventory.v1.InventoryService/ListProducts";

let service: ServiceProcess;
let grpc: Client<typeof InventoryService>;
let connectProtocol: Client<typeof InventoryService>;
let health: Client<typeof Health>;

let operator: Interceptor;
let operatorToken: string;
/** A caller whose subject is as long as an actor may be, so that its AdjustStock may name it. */
let longActor: Client<typeof InventoryService>;
const LONG_SUBJECT = "x".repeat(contents.MAX_ACTOR_LENGTH);

beforeAll(async () => {
  const credentials = await testCredentials();
  operator = credentials.operator;
  operatorToken = await credentials.token(TEST_OPERATOR, ALL_INVENTORY_SCOPES);
  service = await startService("inventory-service", {
    ...credentials.env,
    DATABASE_URL: await createTestDatabase("hostile"),
    METRICS_PORT: "0",
    NODE_OPTIONS: SERVICE_NODE_OPTIONS,
    MAX_CONNECTIONS: String(MAX_CONNECTIONS),
    IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
    REQUEST_BODY_TIMEOUT_MS: String(REQUEST_BODY_TIMEOUT_MS),
    KEEPALIVE_INTERVAL_MS: String(KEEPALIVE_MS),
    KEEPALIVE_TIMEOUT_MS: String(KEEPALIVE_MS),
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
  });
  // A Node.js client counts the unsent rest of a request the server refused
  // against its own session memory (10 MB by default) and then fails every
  // call on the connection: these clients send many such requests.
  const nodeOptions = { maxSessionMemory: 1000 };
  const interceptors = [operator];
  grpc = createClient(InventoryService, createGrpcTransport({ baseUrl: service.url, nodeOptions, interceptors }));
  connectProtocol = createClient(InventoryService, createConnectTransport({ baseUrl: service.url, httpVersion: "2", nodeOptions, interceptors }));
  health = createClient(Health, createGrpcTransport({ baseUrl: service.url }));
  longActor = createClient(
    InventoryService,
    createGrpcTransport({ baseUrl: service.url, interceptors: [bearer(credentials.token(LONG_SUBJECT, [INVENTORY_ADMIN]))] }),
  );
});
afterAll(() => service?.crash());

/** The gRPC code a call ends with; undefined for OK. */
async function codeOf(call: Promise<unknown>): Promise<Code | undefined> {
  try {
    await call;
    return undefined;
  } catch (e) {
    const error = ConnectError.from(e);
    expect(error.rawMessage.length).toBeLessThan(MAX_MESSAGE_LENGTH);
    return error.code;
  }
}

/** The process survived and its memory is bounded; it still answers. */
async function expectUnharmed() {
  expect(service.alive(), service.stderr()).toBe(true);
  await vi.waitFor(() => expect(service.rssMb()).toBeLessThan(RSS_BOUND_MB), { timeout: 5000 });
  expect(await codeOf(grpc.listProducts({}))).toBeUndefined();
  expect(service.stderr()).not.toMatch(/TimeoutOverflowWarning|heap|FATAL/);
}

const text = (length: number, char = "x") => char.repeat(length);
const sku = (length: number) => `S${randomUUID().replaceAll("-", "")}`.padEnd(length, "X").slice(0, length);
const lines = (count: number, productId = () => randomUUID()) => Array.from({ length: count }, () => ({ productId: productId(), quantity: 1 }));
const product = (fields: Partial<{ sku: string; name: string; description: string; currency: string }>) =>
  grpc.createProduct({ sku: sku(20), name: "Hostile", priceMinor: 1n, currency: "USD", initialStock: 1, ...fields });
const adjust = (fields: Partial<{ productId: string; note: string; actor: string }>) =>
  grpc.adjustStock({ productId: randomUUID(), change: { case: "delta", value: 1 }, reason: AdjustmentReason.RESTOCK, ...fields });

/** A CreateProduct request of exactly `bytes` bytes on the wire, its description padding it. */
function createProductOfSize(bytes: number) {
  const base = { sku: sku(20), name: "Sized", priceMinor: 1n, currency: "USD", initialStock: 1 };
  let description = text(bytes);
  for (;;) {
    const size = toBinary(CreateProductRequestSchema, create(CreateProductRequestSchema, { ...base, description })).length;
    if (size === bytes) return { ...base, description };
    description = text(description.length - (size - bytes));
  }
}

const OVER = MAX_REQUEST_BYTES + 1024;
const HUGE = 4 * 1024 * 1024;
const LARGE = 900 * 1024;
const { MAX_LINES, MAX_RESERVE_BATCH, MAX_RESERVE_BATCH_LINES, MAX_CONFIRM_BATCH, MAX_SKU_LENGTH, MAX_NAME_LENGTH, MAX_DESCRIPTION_LENGTH, MAX_NOTE_LENGTH, MAX_ACTOR_LENGTH, MAX_PAGE_TOKEN_LENGTH, UUID_LENGTH } = contents;

describe("unary requests at and over every bound", () => {
  const cases: [string, () => Promise<unknown>, Code | undefined][] = [
    // Counts: refused before any line is looked at.
    [`CheckStock with ${MAX_LINES} lines`, () => grpc.checkStock({ lines: lines(MAX_LINES) }), Code.NotFound],
    [`CheckStock with ${MAX_LINES + 1} lines`, () => grpc.checkStock({ lines: lines(MAX_LINES + 1) }), Code.InvalidArgument],
    ["CheckStock with 30,000 empty lines", () => grpc.checkStock({ lines: Array.from({ length: 30_000 }, () => ({})) }), Code.InvalidArgument],
    ["CheckStock with 20,000 lines of one product", () => grpc.checkStock({ lines: lines(20_000, () => "00000000-0000-4000-8000-000000000001") }), Code.InvalidArgument],
    ["ReserveStock with 100,000 lines", () => grpc.reserveStock({ orderId: randomUUID(), lines: Array.from({ length: 100_000 }, () => ({})) }), Code.InvalidArgument],
    [`ReserveOrders with ${MAX_RESERVE_BATCH + 1} orders`, () => grpc.reserveOrders({ orders: Array.from({ length: MAX_RESERVE_BATCH + 1 }, () => ({ orderId: randomUUID(), lines: lines(1) })) }), Code.InvalidArgument],
    ["ReserveOrders with 100,000 empty orders", () => grpc.reserveOrders({ orders: Array.from({ length: 100_000 }, () => ({})) }), Code.InvalidArgument],
    [`ReserveOrders with ${MAX_RESERVE_BATCH_LINES + 1} lines in all`, () => grpc.reserveOrders({ orders: Array.from({ length: 51 }, () => ({ orderId: randomUUID(), lines: lines(MAX_LINES) })) }), Code.InvalidArgument],
    [`ConfirmReservations with ${MAX_CONFIRM_BATCH} ids`, () => grpc.confirmReservations({ orderIds: Array.from({ length: MAX_CONFIRM_BATCH }, () => randomUUID()) }), undefined],
    ["ConfirmReservations with 20,000 ids", () => grpc.confirmReservations({ orderIds: Array.from({ length: 20_000 }, () => randomUUID()) }), Code.InvalidArgument],
    ["a request whose every line is bad", () => grpc.checkStock({ lines: Array.from({ length: MAX_LINES }, () => ({ productId: text(LARGE / MAX_LINES), quantity: 0 })) }), Code.InvalidArgument],
    // Message size.
    [`a message of exactly ${MAX_REQUEST_BYTES} bytes`, () => grpc.createProduct(createProductOfSize(MAX_REQUEST_BYTES)), Code.InvalidArgument],
    [`a message of ${MAX_REQUEST_BYTES + 1} bytes`, () => grpc.createProduct(createProductOfSize(MAX_REQUEST_BYTES + 1)), Code.ResourceExhausted],
    [`a message of ${MAX_REQUEST_BYTES + 1} bytes over the Connect protocol`, () => connectProtocol.createProduct(createProductOfSize(MAX_REQUEST_BYTES + 1)), Code.ResourceExhausted],
    // Every string field: at its bound, one over, large (quoted back cut short), over the message bound.
    ["order_id of a UUID", () => grpc.commitStock({ orderId: randomUUID() }), Code.NotFound],
    [`order_id of ${UUID_LENGTH + 1} characters`, () => grpc.commitStock({ orderId: `${randomUUID()}0` }), Code.InvalidArgument],
    ["order_id of 900 KiB", () => grpc.reserveStock({ orderId: text(LARGE), lines: lines(1) }), Code.InvalidArgument],
    ["order_id of 4 MiB", () => grpc.commitStock({ orderId: text(HUGE) }), Code.ResourceExhausted],
    ["product_id of a UUID", () => grpc.getProduct({ productId: randomUUID() }), Code.NotFound],
    [`product_id of ${UUID_LENGTH + 1} characters`, () => grpc.getProduct({ productId: `${randomUUID()}0` }), Code.InvalidArgument],
    ["a line's product_id of 900 KiB", () => grpc.checkStock({ lines: [{ productId: text(LARGE), quantity: 1 }] }), Code.InvalidArgument],
    ["product_id of 4 MiB", () => grpc.getProduct({ productId: text(HUGE) }), Code.ResourceExhausted],
    [`sku of ${MAX_SKU_LENGTH} characters`, () => product({ sku: sku(MAX_SKU_LENGTH) }), undefined],
    [`sku of ${MAX_SKU_LENGTH + 1} characters`, () => product({ sku: sku(MAX_SKU_LENGTH + 1) }), Code.InvalidArgument],
    ["sku of 900 KiB", () => product({ sku: text(LARGE) }), Code.InvalidArgument],
    ["sku of 4 MiB", () => product({ sku: text(HUGE) }), Code.ResourceExhausted],
    ["currency of 3 letters", () => product({ currency: "EUR" }), undefined],
    ["currency of 4 letters", () => product({ currency: "EURO" }), Code.InvalidArgument],
    ["currency of 900 KiB", () => product({ currency: text(LARGE, "E") }), Code.InvalidArgument],
    [`name of ${MAX_NAME_LENGTH} characters`, () => product({ name: text(MAX_NAME_LENGTH, "é") }), undefined],
    [`name of ${MAX_NAME_LENGTH + 1} characters`, () => product({ name: text(MAX_NAME_LENGTH + 1) }), Code.InvalidArgument],
    ["name of 900 KiB", () => product({ name: text(LARGE) }), Code.InvalidArgument],
    [`description of ${MAX_DESCRIPTION_LENGTH} characters`, () => product({ description: text(MAX_DESCRIPTION_LENGTH, "😀") }), undefined],
    [`description of ${MAX_DESCRIPTION_LENGTH + 1} characters`, () => product({ description: text(MAX_DESCRIPTION_LENGTH + 1, "😀") }), Code.InvalidArgument],
    [`note of ${MAX_NOTE_LENGTH} characters`, () => adjust({ note: text(MAX_NOTE_LENGTH) }), Code.NotFound],
    [`note of ${MAX_NOTE_LENGTH + 1} characters`, () => adjust({ note: text(MAX_NOTE_LENGTH + 1) }), Code.InvalidArgument],
    ["note of 900 KiB", () => adjust({ note: text(LARGE) }), Code.InvalidArgument],
    [`actor of ${MAX_ACTOR_LENGTH} characters`, () => longActor.adjustStock({ productId: randomUUID(), change: { case: "delta", value: 1 }, reason: AdjustmentReason.RESTOCK, actor: LONG_SUBJECT }), Code.NotFound],
    [`actor of ${MAX_ACTOR_LENGTH + 1} characters`, () => adjust({ actor: text(MAX_ACTOR_LENGTH + 1) }), Code.InvalidArgument],
    [`release reason of ${MAX_NOTE_LENGTH} characters`, () => grpc.releaseStock({ orderId: randomUUID(), reason: text(MAX_NOTE_LENGTH) }), undefined],
    [`release reason of ${MAX_NOTE_LENGTH + 1} characters`, () => grpc.releaseStock({ orderId: randomUUID(), reason: text(MAX_NOTE_LENGTH + 1) }), Code.InvalidArgument],
    ["a page token of the longest SKU", () => grpc.listProducts({ pageToken: encodePageToken(sku(MAX_SKU_LENGTH)) }), undefined],
    [`a page token of ${MAX_PAGE_TOKEN_LENGTH + 1} characters`, () => grpc.listProducts({ pageToken: text(MAX_PAGE_TOKEN_LENGTH + 1, "A") }), Code.InvalidArgument],
    ["a page token of 900 KiB", () => grpc.listProducts({ pageToken: text(LARGE, "A") }), Code.InvalidArgument],
    ["a health service name of 900 KiB", () => health.check({ service: text(LARGE) }), Code.NotFound],
  ];

  it.each(cases)("%s", async (_, call, expected) => {
    const started = performance.now();
    expect(await codeOf(call())).toBe(expected);
    expect(performance.now() - started).toBeLessThan(3000);
    await expectUnharmed();
  });

  it("lists at most 20 violations and counts the rest", async () => {
    const error = ConnectError.from(await grpc.checkStock({ lines: Array.from({ length: MAX_LINES }, () => ({ productId: "x", quantity: 0 })) }).catch((e) => e));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/; and 180 more$/);
  });

  it("cuts a quoted value short and names its length", async () => {
    const error = ConnectError.from(await grpc.commitStock({ orderId: text(LARGE) }).catch((e) => e));
    expect(error.rawMessage).toBe(`order_id must be a UUID, got "${text(64)}"... (${LARGE} characters)`);
  });
});

describe("bodies that are not what they claim", () => {
  const bomb = gzipSync(Buffer.alloc(64 * MAX_REQUEST_BYTES));
  const grpcHeaders = (path: string, extra: Record<string, string> = {}) => ({ ":path": path, "content-type": "application/grpc", te: "trailers", ...extra });
  const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]);

  it(`refuses a gzip message inflating to ${64 * MAX_REQUEST_BYTES} bytes (${bomb.length} on the wire) as RESOURCE_EXHAUSTED, over gRPC and Connect`, async () => {
    const viaGrpc = await h2Request(service.url, grpcHeaders(CHECK_STOCK, { "grpc-encoding": "gzip" }), envelope(bomb, true));
    expect(viaGrpc.grpcStatus).toBe(Code.ResourceExhausted);
    const viaConnect = await h2Request(service.url, { ":path": CHECK_STOCK, "content-type": "application/proto", "content-encoding": "gzip" }, bomb);
    expect(viaConnect.status).toBe(429);
    expect(viaGrpc.ms + viaConnect.ms).toBeLessThan(2000);
    await expectUnharmed();
  });

  it("answers malformed protobuf with INVALID_ARGUMENT over gRPC, gRPC-Web and Connect", async () => {
    expect((await h2Request(service.url, grpcHeaders(CHECK_STOCK), envelope(garbage))).grpcStatus).toBe(Code.InvalidArgument);
    const web = await h2Request(service.url, { ":path": CHECK_STOCK, "content-type": "application/grpc-web+proto" }, envelope(garbage));
    expect(web.headers["grpc-status"] ?? /grpc-status: ?(\d+)/.exec(web.body.toString("latin1"))?.[1]).toBe(String(Code.InvalidArgument));
    const viaConnect = await h2Request(service.url, { ":path": CHECK_STOCK, "content-type": "application/proto" }, garbage);
    expect(viaConnect.status).toBe(400);
    expect(JSON.parse(viaConnect.body.toString())).toMatchObject({ code: "invalid_argument" });
    await expectUnharmed();
  });

  it("serves a deadline longer than 2^31 ms without a timer overflow", async () => {
    const authorization = `Bearer ${operatorToken}`;
    const viaGrpc = await h2Request(service.url, grpcHeaders(LIST_PRODUCTS, { "grpc-timeout": "99999999H", authorization }), envelope(new Uint8Array()));
    expect(viaGrpc.grpcStatus).toBe(0);
    const viaConnect = await h2Request(service.url, { ":path": LIST_PRODUCTS, "content-type": "application/proto", "connect-timeout-ms": "9999999999", authorization }, new Uint8Array());
    expect(viaConnect.status).toBe(200);
    await expectUnharmed();
  });
});

describe("requests that never finish arriving", () => {
  const request = toBinary(CheckStockRequestSchema, create(CheckStockRequestSchema, { lines: lines(1) }));
  const half = envelope(request).subarray(0, 10);
  const headers = (extra: Record<string, string> = {}) => ({ ":path": CHECK_STOCK, "content-type": "application/grpc", te: "trailers", ...extra });

  it("answers a half-sent envelope DEADLINE_EXCEEDED when its grpc-timeout passes, and resets the stream", async () => {
    const answer = await h2Request(service.url, headers({ "grpc-timeout": "300m" }), half, false);
    expect(answer.grpcStatus).toBe(Code.DeadlineExceeded);
    expect(answer.ms).toBeGreaterThan(250);
    expect(answer.ms).toBeLessThan(1000);
    expect(answer.rstCode).toBe(0);
    await expectUnharmed();
  });

  it("answers a half-sent envelope without a deadline when the body timeout passes", async () => {
    const answer = await h2Request(service.url, headers(), half, false);
    expect(answer.grpcStatus).toBe(Code.DeadlineExceeded);
    expect(answer.ms).toBeGreaterThan(REQUEST_BODY_TIMEOUT_MS - 50);
    expect(answer.ms).toBeLessThan(REQUEST_BODY_TIMEOUT_MS + 1000);
    await expectUnharmed();
  });

  it("answers a sender that drips a byte at a time when the body timeout passes", async () => {
    const connection = await rawConnection(service.port);
    connection.headers(1, CHECK_STOCK);
    const bytes = envelope(request);
    let sent = 0;
    const drip = setInterval(() => sent < bytes.length && connection.data(1, bytes.subarray(sent, ++sent), false), 100);
    try {
      await vi.waitFor(() => expect(connection.frames.some((f) => f.type === FRAME.HEADERS && f.streamId === 1)).toBe(true), { timeout: REQUEST_BODY_TIMEOUT_MS + 1000 });
      expect(connection.frames.some((f) => f.type === FRAME.RST_STREAM && f.streamId === 1)).toBe(true);
    } finally {
      clearInterval(drip);
      connection.socket.destroy();
    }
    await expectUnharmed();
  });
});

describe("abusive connections", () => {
  it("refuses streams beyond maxConcurrentStreams on a connection that opens 5,000 half-sent ones, and survives", async () => {
    const connection = await rawConnection(service.port);
    for (let i = 0; i < 5000; i++) connection.headers(2 * i + 1, CHECK_STOCK);
    // Refused stream by stream (RST_STREAM REFUSED_STREAM), then, as the
    // client keeps on, the whole connection (GOAWAY and close; a close
    // with unread data may reach the client as a TCP reset, losing frames).
    await vi.waitFor(() => expect(connection.closed()).toBe(true), { timeout: 3000 });
    const refused = connection.frames.filter((f) => f.type === FRAME.RST_STREAM && f.payload.readUInt32BE(0) === http2.constants.NGHTTP2_REFUSED_STREAM);
    const accepted = connection.frames.filter((f) => f.type === FRAME.HEADERS);
    expect(accepted.length).toBeLessThanOrEqual(DEFAULT_LIMITS.maxConcurrentStreams);
    if (connection.frames.length > 0) expect(refused.length).toBeGreaterThan(0);
    connection.socket.destroy();
    await expectUnharmed();
  });

  it("serves 2,000 concurrent calls on one connection, queued by the client under maxConcurrentStreams", async () => {
    const client = createClient(InventoryService, createGrpcTransport({ baseUrl: service.url, interceptors: [operator] }));
    const codes = await Promise.all(Array.from({ length: 2000 }, () => codeOf(client.getProduct({ productId: randomUUID() }))));
    expect(new Set(codes)).toEqual(new Set([Code.NotFound]));
    await expectUnharmed();
  });

  it(`closes connections beyond ${MAX_CONNECTIONS} at once and idle ones after the idle timeout`, async () => {
    const connections: RawConnection[] = [];
    for (let i = 0; i < MAX_CONNECTIONS + 50; i++) connections.push(await rawConnection(service.port));
    await vi.waitFor(() => expect(connections.filter((c) => c.closed()).length).toBeGreaterThanOrEqual(50), { timeout: IDLE_TIMEOUT_MS / 2 });
    await vi.waitFor(() => expect(connections.filter((c) => !c.closed())).toHaveLength(0), { timeout: IDLE_TIMEOUT_MS + 2000 });
    await expectUnharmed();
  });

  it("keeps a connection with an open Watch past the idle timeout while it answers pings, and drops it once it stops", async () => {
    const watch = envelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" })));
    const live = await rawConnection(service.port);
    const dead = await rawConnection(service.port, { answerPings: false });
    for (const connection of [live, dead]) {
      connection.headers(1, "/grpc.health.v1.Health/Watch");
      connection.data(1, watch, true);
    }
    await dead.whenClosed;
    expect(live.closed()).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, IDLE_TIMEOUT_MS + KEEPALIVE_MS));
    expect(live.closed()).toBe(false);
    expect(live.frames.filter((f) => f.type === FRAME.PING).length).toBeGreaterThan(1);
    live.socket.destroy();
    await expectUnharmed();
  });

  it.each([
    ["garbage bytes", () => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131) % 256))],
    ["HTTP/1.1", () => Buffer.from("POST /inventory.v1.InventoryService/ListProducts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")],
  ])("closes a connection that sends %s instead of HTTP/2", async (_, bytesOf) => {
    const bytes = bytesOf();
    const socket = connect(service.port, "127.0.0.1");
    socket.on("error", () => {});
    // Read whatever the server answers (a GOAWAY), or the close never shows.
    socket.resume();
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.once("connect", () => socket.write(bytes));
    const started = performance.now();
    await closed;
    expect(performance.now() - started).toBeLessThan(1000);
    await expectUnharmed();
  });

  it(`refuses a header block over ${DEFAULT_LIMITS.maxHeaderListBytes} bytes on a connection's first request (ENHANCE_YOUR_CALM, RESOURCE_EXHAUSTED to gRPC clients)`, async () => {
    const padding = { "x-padding": text(2 * DEFAULT_LIMITS.maxHeaderListBytes) };
    const first = await h2Request(service.url, { ":path": LIST_PRODUCTS, "content-type": "application/grpc", te: "trailers", ...padding }, envelope(new Uint8Array()));
    expect(first.rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(await codeOf(grpc.listProducts({}, { headers: { "x-padding": text(DEFAULT_LIMITS.maxHeaderListBytes / 2) } }))).toBeUndefined();
    await expectUnharmed();
  });
});

describe("shutdown", () => {
  it("on SIGTERM stops accepting and, after the grace period, cuts off a half-sent stream and exits", async () => {
    const connection = await rawConnection(service.port);
    connection.headers(1, CHECK_STOCK);
    const started = performance.now();
    await service.stop();
    expect(performance.now() - started).toBeLessThan(SHUTDOWN_TIMEOUT_MS + 600);
    expect(service.stderr()).toBe("");
  });
});
