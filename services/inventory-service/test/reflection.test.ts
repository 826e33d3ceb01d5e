import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { file_google_rpc_error_details } from "@ecommerce/gen/google/rpc/error_details_pb.ts";
import {
  ExtensionRequestSchema,
  ServerReflection,
  ServerReflectionRequestSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "@ecommerce/gen/grpc/reflection/v1/reflection_pb.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealthState } from "../src/health/health-state.ts";
import { healthRoutes } from "../src/health/health-service.ts";
import { reflectionRoutes } from "../src/reflection/reflection.ts";
import { buf, startTestServer, stubInventoryRoutes, type TestServer } from "./grpc-test-server.ts";

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(
    stubInventoryRoutes,
    healthRoutes(createHealthState()),
    reflectionRoutes({ extraFiles: [file_google_rpc_error_details] }),
  );
});

afterAll(() => server?.close());

const servedServices = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "inventory.v1.InventoryService",
];

describe.each(["grpc-v1", "grpc-v1alpha"])("buf curl with --reflect-protocol %s", (reflectProtocol) => {
  const curl = (...args: string[]) =>
    buf("curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect-protocol", reflectProtocol, ...args);

  it("lists exactly the services the server answers", async () => {
    const result = await curl("--list-services", server.url);
    expect(result.stderr).toBe("");
    expect(result.stdout.trim().split("\n").sort()).toEqual(servedServices);
  });

  it("lists the methods of every service", async () => {
    const { stdout } = await curl("--list-methods", server.url);
    const methods = stdout.trim().split("\n");
    expect(methods).toEqual(
      expect.arrayContaining([
        "inventory.v1.InventoryService/CheckStock",
        "inventory.v1.InventoryService/ReserveStock",
        "inventory.v1.InventoryService/AdjustStock",
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
        "grpc.health.v1.Health/List",
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      ]),
    );
  });

  it("calls CheckStock from JSON with no proto files at hand", async () => {
    const request = { lines: [{ productId: "laptop-gaming", quantity: 2 }, { productId: "smartphone", quantity: 20 }] };
    const result = await curl("-d", JSON.stringify(request), `${server.url}/inventory.v1.InventoryService/CheckStock`);
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout)).toEqual({
      lines: [
        { productId: "laptop-gaming", requested: 2, available: 3, isAvailable: true },
        { productId: "smartphone", requested: 20, available: 12 },
      ],
    });
  });

  it("checks health with no proto files at hand", async () => {
    const result = await curl("-d", "{}", `${server.url}/grpc.health.v1.Health/Check`);
    expect(JSON.parse(result.stdout)).toEqual({ status: "SERVING" });
  });
});

describe("ServerReflectionInfo", () => {
  // Asks every question on one stream and collects the answers.
  const ask = async (...questions: ServerReflectionRequest["messageRequest"][]) => {
    const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: server.url }));
    const stream = client.serverReflectionInfo(
      (async function* () {
        for (const messageRequest of questions) yield create(ServerReflectionRequestSchema, { messageRequest });
      })(),
    );
    const answers: ServerReflectionResponse[] = [];
    for await (const answer of stream) answers.push(answer);
    return answers;
  };
  const fileNames = (answer: ServerReflectionResponse | undefined) =>
    answer?.messageResponse.case === "fileDescriptorResponse"
      ? answer.messageResponse.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name)
      : [];
  const errorOf = (answer: ServerReflectionResponse | undefined) =>
    answer?.messageResponse.case === "errorResponse" ? answer.messageResponse.value : undefined;

  it("answers an unknown symbol with a NOT_FOUND error response and keeps the stream open", async () => {
    const answers = await ask(
      { case: "fileContainingSymbol", value: "inventory.v1.NoSuchThing" },
      { case: "fileContainingSymbol", value: "inventory.v1.InventoryService" },
    );
    expect(answers).toHaveLength(2);
    expect(errorOf(answers[0])).toMatchObject({ errorCode: Code.NotFound, errorMessage: 'symbol "inventory.v1.NoSuchThing" not found' });
    expect(fileNames(answers[1])).toEqual(["inventory/v1/inventory.proto", "google/protobuf/timestamp.proto"]);
  });

  it("sends each dependency once per stream, and the requested file every time", async () => {
    const answers = await ask(
      { case: "fileContainingSymbol", value: "inventory.v1.InventoryService.CheckStock" },
      { case: "fileContainingSymbol", value: "inventory.v1.Product.stock" },
      { case: "fileByFilename", value: "google/protobuf/timestamp.proto" },
    );
    expect(answers.map(fileNames)).toEqual([
      ["inventory/v1/inventory.proto", "google/protobuf/timestamp.proto"],
      ["inventory/v1/inventory.proto"],
      ["google/protobuf/timestamp.proto"],
    ]);
  });

  it("resolves services, methods, messages, fields, enums and enum values", async () => {
    const symbols = [
      "grpc.health.v1.Health",
      "grpc.health.v1.HealthCheckResponse.ServingStatus",
      "grpc.health.v1.HealthCheckResponse.SERVING",
      "inventory.v1.ReservationStatus",
      "inventory.v1.RESERVATION_STATUS_RESERVED",
      "inventory.v1.AdjustStockRequest.change",
      "google.protobuf.Timestamp",
      "google.rpc.BadRequest.FieldViolation",
    ];
    const answers = await ask(...symbols.map((value) => ({ case: "fileContainingSymbol" as const, value })));
    expect(answers.map((a) => fileNames(a)[0])).toEqual([
      "grpc/health/v1/health.proto",
      "grpc/health/v1/health.proto",
      "grpc/health/v1/health.proto",
      "inventory/v1/inventory.proto",
      "inventory/v1/inventory.proto",
      "inventory/v1/inventory.proto",
      "google/protobuf/timestamp.proto",
      "google/rpc/error_details.proto",
    ]);
  });

  it("gives descriptors from which a client rebuilds the schema", async () => {
    const [answer] = await ask({ case: "fileContainingSymbol", value: "inventory.v1.InventoryService" });
    if (answer?.messageResponse.case !== "fileDescriptorResponse") throw new Error("expected files");
    const file = answer.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: file.reverse() }));
    const service = registry.getService("inventory.v1.InventoryService");
    expect(service?.methods.map((m) => m.name)).toContain("CheckStock");
    expect(registry.getMessage("inventory.v1.Product")?.field.createTime?.message?.typeName).toBe("google.protobuf.Timestamp");
  });

  it("answers extension questions: numbers of a known type, NOT_FOUND for unknown ones", async () => {
    const answers = await ask(
      { case: "allExtensionNumbersOfType", value: "inventory.v1.Product" },
      { case: "allExtensionNumbersOfType", value: "inventory.v1.Nothing" },
      {
        case: "fileContainingExtension",
        value: create(ExtensionRequestSchema, { containingType: "inventory.v1.Product", extensionNumber: 100 }),
      },
      { case: "fileByFilename", value: "inventory/v1/missing.proto" },
      { case: undefined },
    );
    expect(answers[0]?.messageResponse).toEqual({
      case: "allExtensionNumbersResponse",
      value: expect.objectContaining({ baseTypeName: "inventory.v1.Product", extensionNumber: [] }),
    });
    expect(answers.slice(1).map((a) => errorOf(a)?.errorCode)).toEqual([
      Code.NotFound,
      Code.NotFound,
      Code.NotFound,
      Code.InvalidArgument,
    ]);
  });
});
