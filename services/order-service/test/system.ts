import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { startInventoryServer, type InventoryServer, type InventoryServerOptions } from "@ecommerce/inventory-service/src/server.ts";
import { INVENTORY_API, ORDERS_API } from "@ecommerce/auth/audiences.ts";
import {
  INVENTORY_ADMIN,
  INVENTORY_READ,
  INVENTORY_RESERVE,
  ORDERS_CANCEL_ANY,
  ORDERS_FULFIL,
  ORDERS_READ_ALL,
  type Scope,
} from "@ecommerce/auth/scopes.ts";
import { createTestIssuer } from "@ecommerce/tools/test-tokens.ts";
import { createTestDatabase } from "@ecommerce/tools/testing.ts";
import type { FastifyInstance } from "fastify";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { buildApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { connectDatabase } from "../src/db/connect.ts";
import { migrateToLatest } from "../src/db/migrate.ts";
import { startAppReconciler } from "../src/orders/reconciler.ts";

/** The issuer the services of this test file trust: a key of its own in a temporary folder. */
export const issuer = await createTestIssuer();

/** Every staff scope of the order service. */
export const STAFF_SCOPES: readonly Scope[] = [ORDERS_READ_ALL, ORDERS_FULFIL, ORDERS_CANCEL_ANY];

/** The order service's own token for inventory, as its client-credentials grant would get it. */
export const ORDER_SERVICE_INVENTORY_TOKEN = await issuer.token("order-service", {
  audience: INVENTORY_API,
  scopes: [INVENTORY_READ, INVENTORY_RESERVE],
  clientId: "order-service",
});

/**
 * The environment that makes an order service trust {@link issuer} and
 * call inventory with {@link ORDER_SERVICE_INVENTORY_TOKEN}: for services
 * built in process and for those started as processes alike.
 */
export const ORDER_SERVICE_AUTH_ENV: Readonly<Record<string, string>> = {
  ...issuer.env(ORDERS_API),
  INVENTORY_TOKEN: ORDER_SERVICE_INVENTORY_TOKEN,
};

const bearers = new Map<string, Promise<string>>();

/**
 * `Bearer <token>` for orders-api, for `subject` with `scopes` (every staff
 * scope unless given), minted once per subject and scopes.
 */
export function bearer(subject: string, scopes: readonly Scope[] = STAFF_SCOPES): Promise<string> {
  const id = `${subject} ${scopes.join(" ")}`;
  let token = bearers.get(id);
  if (!token) bearers.set(id, (token = issuer.token(subject, { audience: ORDERS_API, scopes }).then((t) => `Bearer ${t}`)));
  return token;
}

/** A bearer token of {@link issuer} for raw requests, which cannot wait for one: a staff member `raw-client`. */
export const RAW_AUTHORIZATION = await bearer("raw-client");

/** What makes an inventory server, started in process, trust {@link issuer}. */
export const INVENTORY_AUTH = { issuer: issuer.issuer, audience: INVENTORY_API, jwksFile: issuer.jwksFile };

/** The same for an inventory service started as a process. */
export const INVENTORY_AUTH_ENV: Readonly<Record<string, string>> = issuer.env(INVENTORY_API);

/**
 * For a test's own inventory clients, which arrange products and stock and
 * at times act as the order service would: a token with inventory:admin and
 * inventory:reserve on every call.
 */
export const inventoryAdmin: Interceptor = (next) => async (req) => {
  req.header.set("authorization", `Bearer ${await adminToken}`);
  return next(req);
};
const adminToken = issuer.token("inventory-admin", { audience: INVENTORY_API, scopes: [INVENTORY_ADMIN, INVENTORY_READ, INVENTORY_RESERVE] });

/** Both services running in this process on ephemeral ports, each on its own fresh database. */
export interface TestSystem {
  /** Base URL of the order service's REST API, such as http://127.0.0.1:41234/api/v1. */
  api: string;
  /** Root URL of the order service, for probes and docs. */
  root: string;
  app: FastifyInstance;
  /** The order service's database. */
  ordersDatabaseUrl: string;
  /** The inventory's database. */
  inventoryDatabaseUrl: string;
  /** The running inventory server (replaced by startInventory). */
  inventoryServer: InventoryServer;
  /** Stops inventory, as an outage. */
  stopInventory(): Promise<void>;
  /** Starts inventory again on the same port and database. */
  startInventory(): Promise<void>;
  /** A client of inventory of the test's own, to arrange products and check stock. */
  inventory: Client<typeof InventoryService>;
  close(): Promise<void>;
}

/**
 * Starts inventory (unless `inventoryUrl` points elsewhere) and the order
 * service against it, with its reconciler when `reconcile` is set. `env`
 * overrides the order service's environment.
 */
export async function startSystem(
  label: string,
  options: {
    env?: Record<string, string>;
    seed?: boolean;
    inventoryUrl?: string;
    reconcile?: boolean;
    /** Whose tokens inventory trusts; the test issuer's by default. */
    inventoryAuth?: InventoryServerOptions["auth"];
  } = {},
): Promise<TestSystem> {
  const [inventoryDb, ordersDb] = await Promise.all([
    createTestDatabase(`${label}_inventory`),
    createTestDatabase(`${label}_orders`),
  ]);
  let inventoryServer = await startInventoryServer({ databaseUrl: inventoryDb, seed: options.seed, auth: options.inventoryAuth ?? INVENTORY_AUTH });
  let inventoryRunning = true;

  const migrator = connectDatabase(ordersDb, 1);
  await migrateToLatest(migrator);
  await migrator.destroy();

  const config = loadConfig({
    INVENTORY_SERVICE_URL: options.inventoryUrl ?? inventoryServer.url,
    LOG_LEVEL: "error",
    LOG_REQUESTS: "false",
    DB_POOL_SIZE: "20",
    // Load tests would trip the limiter; the tests of rate limiting turn it on.
    RATE_LIMIT_MAX: "0",
    ...ORDER_SERVICE_AUTH_ENV,
    ...options.env,
  });
  const app = await buildApp({ config, databaseUrl: ordersDb });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const reconciler = options.reconcile ? startAppReconciler(app, config) : undefined;
  const { port } = app.server.address() as AddressInfo;

  const sessions = new Http2SessionManager(inventoryServer.url);
  const inventory = createClient(
    InventoryService,
    createGrpcTransport({ baseUrl: inventoryServer.url, sessionManager: sessions, interceptors: [inventoryAdmin] }),
  );
  const system: TestSystem = {
    api: `http://127.0.0.1:${port}/api/v1`,
    root: `http://127.0.0.1:${port}`,
    app,
    ordersDatabaseUrl: ordersDb,
    inventoryDatabaseUrl: inventoryDb,
    inventoryServer,
    stopInventory: async () => {
      inventoryRunning = false;
      await inventoryServer.close();
    },
    startInventory: async () => {
      inventoryServer = await startInventoryServer({ databaseUrl: inventoryDb, port: inventoryServer.port, auth: options.inventoryAuth ?? INVENTORY_AUTH });
      system.inventoryServer = inventoryServer;
      inventoryRunning = true;
    },
    inventory,
    close: async () => {
      sessions.abort();
      await reconciler?.stop();
      // As main.ts shuts down: requests in flight get a grace period, then
      // every connection left (a client's keep-alive socket) is closed.
      const force = setTimeout(() => app.server.closeAllConnections(), 5_000);
      await app.close();
      clearTimeout(force);
      if (inventoryRunning) await inventoryServer.close();
    },
  };
  return system;
}

/** Adds a product with the given stock and price to inventory and returns its id. */
export async function createProduct(
  system: TestSystem,
  options: { stock: number; priceMinor?: number; currency?: string },
): Promise<string> {
  const sku = `T-${randomUUID().slice(0, 12)}`;
  const { product } = await system.inventory.createProduct({
    sku,
    name: `Test product ${sku}`,
    priceMinor: BigInt(options.priceMinor ?? 1000),
    currency: options.currency ?? "USD",
    initialStock: options.stock,
  });
  if (!product) throw new Error("inventory created no product");
  return product.id;
}

/** Polls `check` until it stops throwing, for background work; rethrows its last error after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** The stock level of a product as inventory reports it. */
export async function stockOf(system: TestSystem, productId: string) {
  const { product } = await system.inventory.getProduct({ productId });
  const { onHand, reserved, available } = product?.stock ?? { onHand: 0, reserved: 0, available: 0 };
  return { onHand, reserved, available };
}

/**
 * A JSON request to the API; resolves with the status, headers and parsed
 * body. Unless `headers` has an `authorization` of its own, it carries a
 * token of {@link issuer} with every staff scope, for the customer the body
 * names as `user_id` (a customer placing their own order), else for
 * `test-client`: tests of other behaviour pass the checks of who may do
 * what, which test/authorization.test.ts covers.
 */
export async function call(
  url: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const hasBody = init.body !== undefined;
  const headers: Record<string, string> = { ...(hasBody ? { "content-type": "application/json" } : {}), ...init.headers };
  if (!Object.keys(headers).some((name) => name.toLowerCase() === "authorization")) {
    const named = (init.body as { user_id?: unknown } | undefined)?.user_id;
    headers.authorization = await bearer(typeof named === "string" ? named : "test-client");
  }
  const res = await fetch(url, {
    method: init.method ?? (hasBody ? "POST" : "GET"),
    headers,
    body: hasBody ? (typeof init.body === "string" ? init.body : JSON.stringify(init.body)) : undefined,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** A recorded order event as GET /api/v1/events answers it (a CloudEvent). */
export interface ListedEvent {
  specversion: string;
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  datacontenttype: string;
  data: { order: Record<string, any>; previousStatus?: string };
}

/**
 * Every order event GET /api/v1/events lists now, oldest first, walking
 * the pages from `cursor` (the first event otherwise) until an empty page;
 * resolves with the events and the last `next_cursor`.
 */
export async function listEvents(
  system: TestSystem,
  options: { cursor?: string; type?: string; limit?: number } = {},
): Promise<{ events: ListedEvent[]; next: string }> {
  const events: ListedEvent[] = [];
  let cursor = options.cursor;
  for (;;) {
    const query = new URLSearchParams({ limit: String(options.limit ?? 500) });
    if (cursor !== undefined) query.set("cursor", cursor);
    if (options.type !== undefined) query.set("type", options.type);
    const res = await call(`${system.api}/events?${query}`);
    if (res.status !== 200) throw new Error(`GET /events answered ${res.status}: ${JSON.stringify(res.body)}`);
    events.push(...res.body.data);
    cursor = res.body.next_cursor as string;
    if (res.body.data.length === 0) return { events, next: cursor };
  }
}

/** The events of one order, in the order GET /api/v1/events lists them. */
export async function eventsOf(system: TestSystem, orderId: string): Promise<ListedEvent[]> {
  return (await listEvents(system)).events.filter((e) => e.subject === orderId);
}
