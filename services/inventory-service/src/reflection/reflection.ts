import { create, fromBinary, toBinary, type DescFile, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import * as v1 from "@ecommerce/gen/grpc/reflection/v1/reflection_pb.ts";
import * as v1alpha from "@ecommerce/gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { quoted } from "../stock/errors.ts";
import { indexFiles, type FileIndex } from "./file-index.ts";

/** Options of {@link reflectionRoutes}. */
export interface ReflectionOptions {
  /**
   * Files to describe besides those of the services on the router: types
   * that clients only meet inside google.protobuf.Any, such as the error
   * details of google/rpc/error_details.proto, so that grpcurl can print them.
   */
  readonly extraFiles?: readonly DescFile[];
}

/** What the server describes: its services and the files that define them. */
interface Catalog {
  readonly services: readonly string[];
  readonly index: FileIndex;
  /** Serialized FileDescriptorProto of a file of the index. */
  encoded(file: DescFile): Uint8Array;
}

/**
 * Registers gRPC server reflection, both `grpc.reflection.v1.ServerReflection`
 * and `grpc.reflection.v1alpha.ServerReflection` (which older grpcurl
 * releases use), so that grpcurl and `buf curl` work without .proto files.
 *
 * The services it lists and the files it describes are those of every
 * service registered on the same router, reflection included, plus
 * `extraFiles`, each with its transitive imports. They are read from the
 * router at the first request, so the order of registration does not matter.
 */
export function reflectionRoutes(options: ReflectionOptions = {}): (router: ConnectRouter) => void {
  return (router) => {
    let catalog: Catalog | undefined;
    const getCatalog = () => (catalog ??= buildCatalog(router, options.extraFiles ?? []));

    router.service(v1.ServerReflection, {
      serverReflectionInfo: (requests) => answerStream(getCatalog(), requests),
    });
    router.service(v1alpha.ServerReflection, {
      async *serverReflectionInfo(requests) {
        // v1alpha is v1 under another package name: the messages share
        // their wire format, so one implementation answers both.
        const asV1 = transcode(requests, v1alpha.ServerReflectionRequestSchema, v1.ServerReflectionRequestSchema);
        yield* transcode(answerStream(getCatalog(), asV1), v1.ServerReflectionResponseSchema, v1alpha.ServerReflectionResponseSchema);
      },
    });
  };
}

function buildCatalog(router: ConnectRouter, extraFiles: readonly DescFile[]): Catalog {
  const services = [...new Set(router.handlers.map((h) => h.service.typeName))].sort();
  const index = indexFiles([...router.handlers.map((h) => h.service.file), ...extraFiles]);
  const cache = new Map<DescFile, Uint8Array>();
  const encoded = (file: DescFile) => {
    let bytes = cache.get(file);
    if (!bytes) cache.set(file, (bytes = toBinary(FileDescriptorProtoSchema, file.proto)));
    return bytes;
  };
  return { services, index, encoded };
}

/**
 * Answers every request of one ServerReflectionInfo stream in turn. A
 * client such as grpcurl asks many questions on one stream; files already
 * sent on it are not sent again as dependencies.
 */
async function* answerStream(
  catalog: Catalog,
  requests: AsyncIterable<v1.ServerReflectionRequest>,
): AsyncIterable<v1.ServerReflectionResponse> {
  const sent = new Set<DescFile>();
  for await (const request of requests) yield answer(catalog, request, sent);
}

function answer(catalog: Catalog, request: v1.ServerReflectionRequest, sent: Set<DescFile>): v1.ServerReflectionResponse {
  const respond = (messageResponse: v1.ServerReflectionResponse["messageResponse"]) =>
    create(v1.ServerReflectionResponseSchema, { validHost: request.host, originalRequest: request, messageResponse });
  const error = (code: Code, message: string) =>
    respond({ case: "errorResponse", value: create(v1.ErrorResponseSchema, { errorCode: code, errorMessage: message }) });
  const files = (file: DescFile) =>
    respond({
      case: "fileDescriptorResponse",
      value: create(v1.FileDescriptorResponseSchema, { fileDescriptorProto: withDependencies(file, sent).map(catalog.encoded) }),
    });

  const { index } = catalog;
  const question = request.messageRequest;
  switch (question.case) {
    case "listServices":
      return respond({
        case: "listServicesResponse",
        value: create(v1.ListServiceResponseSchema, { service: catalog.services.map((name) => ({ name })) }),
      });
    case "fileByFilename": {
      const file = index.files.get(question.value);
      return file ? files(file) : error(Code.NotFound, `file ${quoted(question.value)} not found`);
    }
    case "fileContainingSymbol": {
      const file = index.symbols.get(question.value);
      return file ? files(file) : error(Code.NotFound, `symbol ${quoted(question.value)} not found`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = question.value;
      const extension = index.extensionsOf.get(containingType)?.find((e) => e.number === extensionNumber);
      return extension
        ? files(extension.file)
        : error(Code.NotFound, `extension ${extensionNumber} of ${quoted(containingType)} not found`);
    }
    case "allExtensionNumbersOfType": {
      const typeName = question.value;
      if (!index.messages.has(typeName)) return error(Code.NotFound, `message type ${quoted(typeName)} not found`);
      return respond({
        case: "allExtensionNumbersResponse",
        value: create(v1.ExtensionNumberResponseSchema, {
          baseTypeName: typeName,
          extensionNumber: (index.extensionsOf.get(typeName) ?? []).map((e) => e.number),
        }),
      });
    }
    case undefined:
      return error(Code.InvalidArgument, "the request asks nothing: set one of the message_request fields");
  }
}

/**
 * The file itself, always, followed by its transitive imports that this
 * stream has not sent yet: what a client needs to resolve every type it
 * refers to, as grpc-go and grpc-java answer.
 */
function withDependencies(file: DescFile, sent: Set<DescFile>): DescFile[] {
  // A file already sent came with all of its own imports, so the walk
  // stops there.
  const files = [file];
  sent.add(file);
  for (let i = 0; i < files.length; i++) {
    for (const dependency of files[i]!.dependencies) {
      if (sent.has(dependency)) continue;
      sent.add(dependency);
      files.push(dependency);
    }
  }
  return files;
}

async function* transcode<From extends DescMessage, To extends DescMessage>(
  messages: AsyncIterable<MessageShape<From>>,
  from: From,
  to: To,
): AsyncIterable<MessageShape<To>> {
  for await (const message of messages) yield fromBinary(to, toBinary(from, message));
}
