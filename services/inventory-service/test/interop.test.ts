import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import { CheckStockRequestSchema, CheckStockResponseSchema } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealthState } from "../src/health/health-state.ts";
import { healthRoutes } from "../src/health/health-service.ts";
import { reflectionRoutes } from "../src/reflection/reflection.ts";
import { startTestServer, stubInventoryRoutes, type TestServer } from "./grpc-test-server.ts";

// Debian's interpreter, where apt installs python3-grpcio; another python3
// on PATH may not have it.
const python = "/usr/bin/python3";
const clientScript = path.join(import.meta.dirname, "interop/grpc_client.py");
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

/** Makes the calls with the grpcio client script and returns what it saw. */
async function callWithGrpcio(target: string, calls: GrpcioCall[]): Promise<GrpcioResult[]> {
  const input = JSON.stringify({
    target,
    calls: calls.map((c) => ({
      method: c.method,
      request: Buffer.from(c.request).toString("base64"),
      stream_messages: c.streamMessages,
    })),
  });
  const child = spawn(python, [clientScript], { stdio: ["pipe", "pipe", "pipe"] });
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
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(stubInventoryRoutes, healthRoutes(createHealthState()), reflectionRoutes());
  });

  afterAll(() => server?.close());

  it("checks health, watches it, and gets NOT_FOUND for an unknown service", async () => {
    const check = (service: string) => toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }));
    const [overall, unknown, watch] = await callWithGrpcio(server.target, [
      { method: "/grpc.health.v1.Health/Check", request: check("") },
      { method: "/grpc.health.v1.Health/Check", request: check("inventory.v1.Nope") },
      { method: "/grpc.health.v1.Health/Watch", request: check(""), streamMessages: 1 },
    ]);
    const statuses = (r: GrpcioResult | undefined) =>
      r?.responses.map((b) => fromBinary(HealthCheckResponseSchema, b).status);

    expect(overall?.code).toBe("OK");
    expect(statuses(overall)).toEqual([HealthCheckResponse_ServingStatus.SERVING]);
    expect(unknown).toMatchObject({ code: "NOT_FOUND", details: 'unknown service "inventory.v1.Nope"', responses: [] });
    expect(statuses(watch)).toEqual([HealthCheckResponse_ServingStatus.SERVING]);
  });

  it("calls InventoryService/CheckStock", async () => {
    const request = create(CheckStockRequestSchema, {
      lines: [
        { productId: "smartphone", quantity: 2 },
        { productId: "laptop-gaming", quantity: 4 },
      ],
    });
    const [result] = await callWithGrpcio(server.target, [
      { method: "/inventory.v1.InventoryService/CheckStock", request: toBinary(CheckStockRequestSchema, request) },
    ]);

    expect(result?.code).toBe("OK");
    const response = fromBinary(CheckStockResponseSchema, result!.responses[0]!);
    expect(response.allAvailable).toBe(false);
    expect(response.lines.map(({ productId, requested, available, isAvailable }) => ({ productId, requested, available, isAvailable }))).toEqual([
      { productId: "smartphone", requested: 2, available: 12, isAvailable: true },
      { productId: "laptop-gaming", requested: 4, available: 3, isAvailable: false },
    ]);
  });
});
