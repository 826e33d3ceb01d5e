import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  CreateProductRequestSchema,
  InventoryService,
  type Product,
} from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { createTestDatabase } from "@ecommerce/tools/testing.ts";
import { sql, type Kysely } from "kysely";
import type { Database } from "../src/db/database.ts";
import { startInventoryServer, type InventoryServer, type InventoryServerOptions } from "../src/server.ts";

/** A real inventory service on a fresh database, and a gRPC client of it. */
export interface Harness {
  server: InventoryServer;
  client: Client<typeof InventoryService>;
  /** Creates a product with a unique SKU (and 10 units unless told otherwise). */
  product(fields?: MessageInitShape<typeof CreateProductRequestSchema>): Promise<Product>;
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
