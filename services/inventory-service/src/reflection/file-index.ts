import type { DescExtension, DescFile } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";

/**
 * The proto files a server can describe, looked up the ways server
 * reflection asks: by file name, by any fully-qualified symbol declared in
 * them, and by extension.
 */
export interface FileIndex {
  /** Files by name, such as "inventory/v1/inventory.proto". */
  readonly files: ReadonlyMap<string, DescFile>;
  /**
   * The file declaring a fully-qualified name: a package-qualified service,
   * method, message, field, oneof, enum, enum value or extension.
   */
  readonly symbols: ReadonlyMap<string, DescFile>;
  /** Message type names that exist in these files. */
  readonly messages: ReadonlySet<string>;
  /** Extensions by the message type they extend. */
  readonly extensionsOf: ReadonlyMap<string, readonly DescExtension[]>;
}

/**
 * Indexes `roots` and everything they import, transitively, so that a
 * client can always resolve the types a file refers to (such as
 * google/protobuf/timestamp.proto).
 */
export function indexFiles(roots: Iterable<DescFile>): FileIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const messages = new Set<string>();
  const extensionsOf = new Map<string, DescExtension[]>();

  const visit = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    file.dependencies.forEach(visit);
    for (const desc of nestedTypes(file)) {
      symbols.set(desc.typeName, file);
      switch (desc.kind) {
        case "service":
          for (const method of desc.methods) symbols.set(`${desc.typeName}.${method.name}`, file);
          break;
        case "message":
          messages.add(desc.typeName);
          for (const member of [...desc.fields, ...desc.oneofs]) symbols.set(`${desc.typeName}.${member.name}`, file);
          break;
        case "enum": {
          // Enum values are scoped as siblings of their enum, as in C++.
          const scope = desc.typeName.slice(0, desc.typeName.length - desc.name.length);
          for (const value of desc.values) symbols.set(`${scope}${value.name}`, file);
          break;
        }
        case "extension": {
          const list = extensionsOf.get(desc.extendee.typeName) ?? [];
          list.push(desc);
          extensionsOf.set(desc.extendee.typeName, list);
          break;
        }
      }
    }
  };
  for (const file of roots) visit(file);
  return { files, symbols, messages, extensionsOf };
}
