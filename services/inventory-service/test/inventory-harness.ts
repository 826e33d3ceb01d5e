import { create, toJson, type DescMessage, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { anyUnpack, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { INVENTORY_API } from "@ecommerce/auth/audiences.ts";
import { INVENTORY_ADMIN, INVENTORY_READ, INVENTORY_RESERVE } from "@ecommerce/auth/scopes.ts";
import { EVENT_TYPES, isEventType } from "@ecommerce/events/catalogue.ts";
import {
  CreateProductRequestSchema,
  InventoryService,
  type Event,
  type Product,
  type StockLevel,
} from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { createTestIssuer, type TestIssuer } from "@ecommerce/tools/test-tokens.ts";
import { createTestDatabase } from "@ecommerce/tools/testing.ts";
import { sql, type Kysely } from "kysely";
import type { AuthSettings } from "../src/config.ts";
import type { Database } from "../src/db/database.ts";
import { startInventoryServer, type InventoryServer, type InventoryServerOptions } from "../src/server.ts";

/** Every inventory scope: the harness's own client may call every RPC, and no budget applies to it. */
export const ALL_INVENTORY_SCOPES = [INVENTORY_READ, INVENTORY_RESERVE, INVENTORY_ADMIN];

/** A real inventory service on a fresh database, and a gRPC client of it. */
export interface Harness {
  server: InventoryServer;
  /** The issuer the server trusts. */
  issuer: TestIssuer;
  /** A client whose calls carry a token for subject `test-operator` with every inventory scope. */
  client: Client<typeof InventoryService>;
  token: TestCredentials["token"];
  /** Sends the client's token, for clients of other transports or services. */
  operator: Interceptor;
  /** Creates a product with a unique SKU (and 10 units unless told otherwise). */
  product(fields?: MessageInitShape<typeof CreateProductRequestSchema>): Promise<Product>;
  /** A product's stock level as GetProduct reports it. */
  stockOf(productId: string): Promise<StockLevel>;
  close(): Promise<void>;
}

let skuCounter = 0;

/** Interceptor that sends `token` (or the token it resolves to, once) as the call's bearer token. */
export function bearer(token: string | Promise<string>): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${await token}`);
    return next(req);
  };
}

/** The service's test identity, as the harness's client calls it. */
export const TEST_OPERATOR = "test-operator";

/** An issuer of a test's own and what a service and its clients need to use it. */
export interface TestCredentials {
  issuer: TestIssuer;
  /** startInventoryServer's `auth` option trusting the issuer. */
  auth: { issuer: string; audience: string; jwksFile: string };
  /** The same as AUTH_* variables, for a service started as a process. */
  env: Record<string, string>;
  /** A token for `subject` with `scopes`, for inventory-api. */
  token(subject: string, scopes: readonly string[], options?: { clientId?: string }): Promise<string>;
  /** Sends a token of TEST_OPERATOR with every inventory scope. */
  operator: Interceptor;
}

/** A fresh test issuer, for inventory-api. */
export async function testCredentials(): Promise<TestCredentials> {
  const issuer = await createTestIssuer();
  const token: TestCredentials["token"] = (subject, scopes, extra = {}) => issuer.token(subject, { audience: INVENTORY_API, scopes, ...extra });
  return {
    issuer,
    auth: { issuer: issuer.issuer, audience: INVENTORY_API, jwksFile: issuer.jwksFile },
    env: issuer.env(INVENTORY_API),
    token,
    operator: bearer(token(TEST_OPERATOR, ALL_INVENTORY_SCOPES)),
  };
}

/**
 * Starts the service in-process on an ephemeral port against its own empty
 * database, trusting an issuer of its own; `options.auth` changes what it
 * says about it.
 */
export async function startHarness(
  options: Partial<Omit<InventoryServerOptions, "auth">> & { auth?: Partial<AuthSettings> } = {},
): Promise<Harness> {
  const credentials = await testCredentials();
  const server = await startInventoryServer({
    databaseUrl: await createTestDatabase("inventory"),
    ...options,
    auth: { ...credentials.auth, ...options.auth },
  });
  const client = createClient(InventoryService, createGrpcTransport({ baseUrl: server.url, interceptors: [credentials.operator] }));
  return {
    server,
    issuer: credentials.issuer,
    client,
    token: credentials.token,
    operator: credentials.operator,
    async product(fields = {}) {
      const defaults = {
        sku: `TEST-${++skuCounter}-${Date.now()}`,
        name: "Test product",
        priceMinor: 1000n,
        currency: "USD",
        initialStock: 10,
      };
      return (await client.createProduct(create(CreateProductRequestSchema, { ...defaults, ...fields }))).product!;
    },
    stockOf: async (productId) => (await client.getProduct({ productId })).product!.stock!,
    close: () => server.close(),
  };
}

/** The ConnectError a call fails with; fails the test when the call succeeds. */
export async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Clients on separate HTTP/2 connections, as separate order-service replicas would be, each with the harness's token. */
export function replicaClients(h: Harness, count = 4): Client<typeof InventoryService>[] {
  return Array.from({ length: count }, () => createClient(InventoryService, createGrpcTransport({ baseUrl: h.server.url, interceptors: [h.operator] })));
}

/** Status code of each settled call: "ok" or the gRPC code's name, counted. */
export function outcomes(results: PromiseSettledResult<unknown>[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) {
    const key = r.status === "fulfilled" ? "ok" : Code[ConnectError.from(r.reason).code];
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/**
 * Holds the row lock of a product's stock level in another transaction
 * until the returned function is called: a reservation of that product
 * waits for it, as it would behind a slow concurrent writer.
 */
export async function lockStockRow(server: InventoryServer, productId: string): Promise<() => Promise<void>> {
  const tx = await server.db.startTransaction().execute();
  await tx.selectFrom("stock_levels").select("product_id").where("product_id", "=", productId).forUpdate().execute();
  return () => tx.commit().execute();
}

/**
 * Rows where the stock figures disagree with the ledger or with the live
 * reservations, or break 0 <= reserved <= on_hand. Empty when all is well.
 */
export async function stockInconsistencies(server: { db: Kysely<Database> }) {
  const { rows } = await sql<{ product_id: string; on_hand: number; reserved: number }>`
    SELECT s.product_id, s.on_hand, s.reserved
    FROM stock_levels s
    LEFT JOIN (
      SELECT product_id, sum(on_hand_delta)::int AS on_hand, sum(reserved_delta)::int AS reserved
      FROM stock_movements GROUP BY product_id
    ) ledger USING (product_id)
    LEFT JOIN (
      SELECT l.product_id, sum(l.quantity)::int AS reserved
      FROM reservation_lines l JOIN reservations r USING (order_id)
      WHERE r.status IN ('reserved', 'confirmed') GROUP BY l.product_id
    ) live USING (product_id)
    WHERE s.on_hand IS DISTINCT FROM ledger.on_hand
       OR s.reserved IS DISTINCT FROM ledger.reserved
       OR s.reserved <> coalesce(live.reserved, 0)
       OR s.reserved < 0 OR s.reserved > s.on_hand
  `.execute(server.db);
  return rows;
}

/** An event as a ListEvents client reads it: its attributes, and its payload unpacked and printed in the JSON mapping. */
export interface ReadEvent {
  id: string;
  type: string;
  source: string;
  subject: string;
  time: Date;
  publishTime: Date | undefined;
  data: JsonValue;
}

/** Unpacks an event's google.protobuf.Any by its type, as a consumer does; fails the test when it does not hold that type's message. */
export function readEvent(event: Event): ReadEvent {
  if (!isEventType(event.type)) throw new Error(`unknown event type ${event.type}`);
  const schema: DescMessage = EVENT_TYPES[event.type];
  const message = event.data && anyUnpack(event.data, schema);
  if (message === undefined) throw new Error(`event ${event.id} does not hold a ${schema.typeName}: ${event.data?.typeUrl}`);
  return {
    id: event.id,
    type: event.type,
    source: event.source,
    subject: event.subject,
    time: timestampDate(event.time!),
    publishTime: event.publishTime && timestampDate(event.publishTime),
    data: toJson(schema, message),
  };
}

/**
 * Every event ListEvents gives after `pageToken` (from the oldest when
 * empty), page by page until a page is not full, and the token to ask
 * with later for what is recorded since.
 */
export async function readEvents(
  client: Client<typeof InventoryService>,
  options: { pageToken?: string; type?: string; pageSize?: number } = {},
): Promise<{ events: ReadEvent[]; next: string }> {
  const pageSize = options.pageSize ?? 500;
  const events: ReadEvent[] = [];
  let pageToken = options.pageToken ?? "";
  for (;;) {
    const page = await client.listEvents({ pageSize, pageToken, type: options.type ?? "" });
    events.push(...page.events.map(readEvent));
    pageToken = page.nextPageToken;
    if (page.events.length < pageSize) return { events, next: pageToken };
  }
}
