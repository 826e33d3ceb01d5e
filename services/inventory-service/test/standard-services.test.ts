import { execFile, spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { BadRequestSchema } from "@ecommerce/gen/google/rpc/error_details_pb.ts";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import * as reflectionV1 from "@ecommerce/gen/grpc/reflection/v1/reflection_pb.ts";
import * as reflectionV1alpha from "@ecommerce/gen/grpc/reflection/v1alpha/reflection_pb.ts";
import {
  CheckStockRequestSchema,
  CheckStockResponseSchema,
  InventoryService,
} from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { repoRoot } from "@ecommerce/tools/postgres.ts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ALL_INVENTORY_SCOPES, startHarness, type Harness } from "./inventory-harness.ts";
import { h2Request } from "./raw-http2.ts";

// The real service (seeded with the sample products) as tools that know
// nothing of this code base see it: the buf CLI learning the schema by
// server reflection, and grpcio, the C-core gRPC implementation.

const LAPTOP = "00000000-0000-4000-8000-000000000001";
const SMARTPHONE = "00000000-0000-4000-8000-000000000002";
const SERVED = [InventoryService, Health, reflectionV1.ServerReflection, reflectionV1alpha.ServerReflection];

let h: Harness;
/** buf curl's and grpcio's credentials: a token with every inventory scope. */
let authorization: string;
beforeAll(async () => {
  h = await startHarness({ seed: true });
  authorization = `Bearer ${await h.token("interop", ALL_INVENTORY_SCOPES)}`;
  // Health is NOT_SERVING until the first database check has answered.
  const health = createClient(Health, createGrpcTransport({ baseUrl: h.server.url }));
  await vi.waitFor(async () => expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING));
});
afterAll(() => h.close());

const execFileAsync = promisify(execFile);

/**
 * Runs the workspace's `buf` binary and returns what it printed.
 * Asynchronous on purpose: the server answering it runs in this process.
 */
async function buf(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await execFileAsync(path.join(repoRoot, "node_modules/.bin/buf"), args, { timeout: 30_000 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const failure = e as { stdout?: string; stderr?: string; code?: number };
    return { stdout: failure.stdout ?? "", stderr: failure.stderr ?? "", code: failure.code ?? -1 };
  }
}

describe.each(["grpc-v1", "grpc-v1alpha"])("buf curl with --reflect-protocol %s and no .proto files", (reflectProtocol) => {
  const curl = (...args: string[]) =>
    buf("curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect-protocol", reflectProtocol, "-H", `authorization: ${authorization}`, ...args);

  it("lists exactly the services the server answers", async () => {
    const result = await curl("--list-services", h.server.url);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(result.stdout.trim().split("\n")).toEqual(SERVED.map((s) => s.typeName).sort());
  });

  it("lists every method of every service, each InventoryService RPC among them", async () => {
    const result = await curl("--list-methods", h.server.url);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const methods = result.stdout.trim().split("\n");
    expect(methods).toEqual(SERVED.flatMap((s) => s.methods.map((m) => `${s.typeName}/${m.name}`)).sort());
    expect(methods.filter((m) => m.startsWith("inventory.v1.InventoryService/"))).toHaveLength(11);
  });

  it("calls CheckStock from JSON", async () => {
    const request = { lines: [{ product_id: LAPTOP, quantity: 2 }, { product_id: SMARTPHONE, quantity: 500 }] };
    const result = await curl("-d", JSON.stringify(request), `${h.server.url}/inventory.v1.InventoryService/CheckStock`);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(result.stdout)).toEqual({
      lines: [
        { productId: LAPTOP, requested: 2, available: 50, isAvailable: true },
        { productId: SMARTPHONE, requested: 500, available: 100 },
      ],
    });
  });

  it("calls ListEvents and prints each event's payload, a google.protobuf.Any, as the message it holds", async () => {
    const request = { type: "inventory.v1.stock.adjusted", page_size: 2 };
    const result = await curl("-d", JSON.stringify(request), `${h.server.url}/inventory.v1.InventoryService/ListEvents`);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const printed = JSON.parse(result.stdout) as { events: Record<string, unknown>[]; nextPageToken: string };
    expect(printed.events).toEqual([LAPTOP, SMARTPHONE].map((productId, i) => ({
      id: expect.any(String),
      type: "inventory.v1.stock.adjusted",
      source: "/inventory-service",
      subject: productId,
      time: expect.any(String),
      data: {
        "@type": "type.googleapis.com/inventory.v1.StockAdjusted",
        productId,
        movement: expect.objectContaining({ productId, kind: "initial", actor: "seeder" }),
        stock: [
          { onHand: 50, available: 50, lowStockThreshold: 10 },
          { onHand: 100, available: 100, lowStockThreshold: 20 },
        ][i],
      },
    })));
    expect(printed.nextPageToken).not.toBe("");
  });

  it("checks health: SERVING", async () => {
    const result = await curl("-d", "{}", `${h.server.url}/grpc.health.v1.Health/Check`);
    expect(JSON.parse(result.stdout)).toEqual({ status: "SERVING" });
  });

  it("prints a refusal with its code, message and a google.rpc.BadRequest naming each bad field", async () => {
    const request = { order_id: "42", lines: [{ product_id: "laptop", quantity: 0 }] };
    const result = await curl("-d", JSON.stringify(request), `${h.server.url}/inventory.v1.InventoryService/ReserveStock`);
    expect(result.code).not.toBe(0);
    const printed = JSON.parse(result.stderr) as { code: string; message: string; details: { type: string; value: string }[] };
    expect(printed.code).toBe("invalid_argument");
    expect(printed.message).toBe(
      'order_id must be a UUID, got "42"; lines[0].product_id must be a UUID, got "laptop"; lines[0].quantity must be at least 1',
    );
    expect(printed.details.map((d) => d.type)).toEqual(["google.rpc.BadRequest"]);
    const detail = fromBinary(BadRequestSchema, Buffer.from(printed.details[0]!.value, "base64"));
    expect(detail.fieldViolations.map((v) => v.field)).toEqual(["order_id", "lines[0].product_id", "lines[0].quantity"]);
  });
});

describe("the Connect protocol with JSON", () => {
  it("answers ListEvents with each event's payload as JSON, typed by its @type", async () => {
    const answer = await h2Request(
      h.server.url,
      { ":path": "/inventory.v1.InventoryService/ListEvents", "content-type": "application/json", authorization },
      Buffer.from(JSON.stringify({ type: "inventory.v1.stock.adjusted", pageSize: 1 })),
    );
    expect(answer.status).toBe(200);
    const { events } = JSON.parse(answer.body.toString()) as { events: { subject: string; data: Record<string, unknown> }[] };
    expect(events).toHaveLength(1);
    expect(events[0]?.subject).toBe(LAPTOP);
    expect(events[0]?.data).toMatchObject({
      "@type": "type.googleapis.com/inventory.v1.StockAdjusted",
      productId: LAPTOP,
      movement: { kind: "initial", onHandDelta: 50 },
      stock: { onHand: 50, available: 50, lowStockThreshold: 10 },
    });
  });
});

// Debian's interpreter, where apt installs python3-grpcio; another python3
// on PATH may not have it.
const python = "/usr/bin/python3";
const grpcioMissing =
  spawnSync(python, ["-c", "import grpc"]).status === 0
    ? undefined
    : `${python} cannot import grpc (apt-get install python3-grpcio python3-protobuf)`;

interface GrpcioCall {
  method: string;
  request: Uint8Array;
  /** For a server-streaming method: how many responses to read before cancelling. */
  streamMessages?: number;
}

interface GrpcioResult {
  code: string;
  details: string;
  responses: Uint8Array[];
}

/** Makes the calls with test/interop/grpc_client.py and returns what it saw. */
async function callWithGrpcio(calls: GrpcioCall[]): Promise<GrpcioResult[]> {
  const input = JSON.stringify({
    target: new URL(h.server.url).host,
    metadata: [["authorization", authorization]],
    calls: calls.map((c) => ({
      method: c.method,
      request: Buffer.from(c.request).toString("base64"),
      stream_messages: c.streamMessages,
    })),
  });
  const child = spawn(python, [path.join(import.meta.dirname, "interop/grpc_client.py")], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
  child.stdin.end(input);
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  if (code !== 0) throw new Error(`grpc_client.py exited with ${code}: ${stderr}`);
  const results = JSON.parse(stdout) as { code: string; details: string; responses: string[] }[];
  return results.map((r) => ({ ...r, responses: r.responses.map((b) => Buffer.from(b, "base64")) }));
}

describe.skipIf(grpcioMissing)(grpcioMissing ? `grpcio interop, skipped: ${grpcioMissing}` : "a grpcio (C-core) client", () => {
  it("checks health, watches it, and gets NOT_FOUND for an unknown service", async () => {
    const check = (service: string) => toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }));
    const [overall, inventory, unknown, watch] = await callWithGrpcio([
      { method: "/grpc.health.v1.Health/Check", request: check("") },
      { method: "/grpc.health.v1.Health/Check", request: check(InventoryService.typeName) },
      { method: "/grpc.health.v1.Health/Check", request: check("inventory.v1.Nope") },
      { method: "/grpc.health.v1.Health/Watch", request: check(""), streamMessages: 1 },
    ]);
    const statuses = (r: GrpcioResult | undefined) => r?.responses.map((b) => fromBinary(HealthCheckResponseSchema, b).status);

    expect(overall?.code).toBe("OK");
    expect(statuses(overall)).toEqual([HealthCheckResponse_ServingStatus.SERVING]);
    expect(statuses(inventory)).toEqual([HealthCheckResponse_ServingStatus.SERVING]);
    expect(unknown).toMatchObject({ code: "NOT_FOUND", details: 'unknown service "inventory.v1.Nope"', responses: [] });
    expect(statuses(watch)).toEqual([HealthCheckResponse_ServingStatus.SERVING]);
  });

  it("calls InventoryService/CheckStock", async () => {
    const request = create(CheckStockRequestSchema, {
      lines: [
        { productId: SMARTPHONE, quantity: 2 },
        { productId: LAPTOP, quantity: 51 },
      ],
    });
    const [result] = await callWithGrpcio([
      { method: "/inventory.v1.InventoryService/CheckStock", request: toBinary(CheckStockRequestSchema, request) },
    ]);

    expect(result?.code).toBe("OK");
    const response = fromBinary(CheckStockResponseSchema, result!.responses[0]!);
    expect(response.allAvailable).toBe(false);
    expect(response.lines.map(({ productId, requested, available, isAvailable }) => ({ productId, requested, available, isAvailable }))).toEqual([
      { productId: SMARTPHONE, requested: 2, available: 100, isAvailable: true },
      { productId: LAPTOP, requested: 51, available: 50, isAvailable: false },
    ]);
  });

  it("gets INVALID_ARGUMENT naming the bad field", async () => {
    const request = create(CheckStockRequestSchema, { lines: [{ productId: LAPTOP, quantity: 0 }] });
    const [result] = await callWithGrpcio([
      { method: "/inventory.v1.InventoryService/CheckStock", request: toBinary(CheckStockRequestSchema, request) },
    ]);
    expect(result).toMatchObject({ code: "INVALID_ARGUMENT", details: "lines[0].quantity must be at least 1" });
  });
});
