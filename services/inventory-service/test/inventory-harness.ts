import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  CreateProductRequestSchema,
  InventoryService,
  type Product,
  type StockLevel,
} from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { createTestDatabase } from "@ecommerce/tools/testing.ts";
import { sql } from "kysely";
import { startInventoryServer, type InventoryServer, type InventoryServerOptions } from "../src/server.ts";

/** A real inventory service on a fresh database, and a gRPC client of it. */
export interface Harness {
  server: InventoryServer;
  client: Client<typeof InventoryService>;
  /** Creates a product with a unique SKU (and 10 units unless told otherwise). */
  product(fields?: MessageInitShape<typeof CreateProductRequestSchema>): Promise<Product>;
  /** A product's stock level as GetProduct reports it. */
  stockOf(productId: string): Promise<StockLevel>;
  close(): Promise<void>;
}

let skuCounter = 0;

/** Starts the service in-process on an ephemeral port against its own empty database. */
export async function startHarness(options: Partial<InventoryServerOptions> = {}): Promise<Harness> {
  const server = await startInventoryServer({ databaseUrl: await createTestDatabase("inventory"), ...options });
  const client = createClient(InventoryService, createGrpcTransport({ baseUrl: server.url }));
  return {
    server,
    client,
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

/** Clients on separate HTTP/2 connections, as separate order-service replicas would be. */
export function replicaClients(server: InventoryServer, count = 4): Client<typeof InventoryService>[] {
  return Array.from({ length: count }, () => createClient(InventoryService, createGrpcTransport({ baseUrl: server.url })));
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
export async function stockInconsistencies(server: InventoryServer) {
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
