import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  ExtensionRequestSchema,
  ServerReflection,
  ServerReflectionRequestSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "@ecommerce/gen/grpc/reflection/v1/reflection_pb.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "./inventory-harness.ts";

// The protocol itself, against the real server; what grpcurl-like tools
// make of it is in standard-services.test.ts.
let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe("ServerReflectionInfo", () => {
  // Asks every question on one stream and collects the answers.
  const ask = async (...questions: ServerReflectionRequest["messageRequest"][]) => {
    const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: h.server.url }));
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
    expect(fileNames(answers[1])).toEqual([
      "inventory/v1/inventory.proto",
      "google/protobuf/any.proto",
      "google/protobuf/timestamp.proto",
      "google/rpc/status.proto",
    ]);
  });

  it("sends each dependency once per stream, and the requested file every time", async () => {
    const answers = await ask(
      { case: "fileContainingSymbol", value: "inventory.v1.InventoryService.CheckStock" },
      { case: "fileContainingSymbol", value: "inventory.v1.Product.stock" },
      { case: "fileByFilename", value: "google/protobuf/timestamp.proto" },
    );
    expect(answers.map(fileNames)).toEqual([
      ["inventory/v1/inventory.proto", "google/protobuf/any.proto", "google/protobuf/timestamp.proto", "google/rpc/status.proto"],
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
      "inventory.v1.StockReserved",
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
      "inventory/v1/events.proto",
    ]);
  });

  it("gives descriptors from which a client rebuilds the schema", async () => {
    const [answer] = await ask({ case: "fileContainingSymbol", value: "inventory.v1.InventoryService" });
    if (answer?.messageResponse.case !== "fileDescriptorResponse") throw new Error("expected files");
    const sent = new Map(
      answer.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b)).map((f) => [f.name, f]),
    );
    // As a client does: each file after its imports, which it finds by name among those sent, whatever their order.
    const ordered: FileDescriptorProto[] = [];
    const add = (name: string) => {
      const file = sent.get(name);
      if (file === undefined || ordered.includes(file)) return;
      file.dependency.forEach(add);
      ordered.push(file);
    };
    add("inventory/v1/inventory.proto");
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
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
