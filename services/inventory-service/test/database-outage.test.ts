import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as Status } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { ensureDatabase } from "@ecommerce/tools/postgres.ts";
import { startService, type ServiceProcess } from "@ecommerce/tools/processes.ts";
import { SERVICE_NODE_OPTIONS } from "@ecommerce/tools/runtime.ts";
import { startOwnPostgres, type OwnPostgres } from "@ecommerce/tools/testing.ts";
import { sql, type Kysely } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createDatabase, type Database } from "../src/db/database.ts";
import { stockInconsistencies, testCredentials } from "./inventory-harness.ts";

// The service as a process of its own on a PostgreSQL of the test's own,
// which the test restarts and whose backends it terminates: idle, under
// load, and with a transaction open. The process must stay up, health
// must follow the database, calls in the window must be UNAVAILABLE (never
// INTERNAL), and no reservation may be lost or half written.

let postgres: OwnPostgres;
let databaseUrl: string;
let service: ServiceProcess;
let inventory: Client<typeof InventoryService>;
let health: Client<typeof Health>;
/** The test's own view of the database, for checks. */
let db: Kysely<Database>;
let productIds: string[];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const statusOf = () => health.check({ service: "" }).then((r) => r.status, () => Status.UNKNOWN);

async function codeOf(call: Promise<unknown>): Promise<Code | undefined> {
  try {
    await call;
    return undefined;
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

const reserve = (orderId: string, productId = productIds[0]!, timeoutMs = 5000) =>
  inventory.reserveStock({ orderId, lines: [{ productId, quantity: 1 }] }, { timeoutMs });

/** What the calls of {@link load} got: each order id and its code. */
type Outcome = { orderId: string; code: Code | undefined };

/** Reserves from `workers` concurrent loops until the returned stop() is called. */
function load(workers: number) {
  const outcomes: Outcome[] = [];
  let running = true;
  const loops = Array.from({ length: workers }, async (_, worker) => {
    while (running) {
      const orderId = randomUUID();
      const code = await codeOf(reserve(orderId, productIds[worker % productIds.length]));
      outcomes.push({ orderId, code });
      // While the database is away calls fail at once; do not spin.
      if (code !== undefined) await sleep(20);
    }
  });
  return {
    outcomes,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return outcomes;
    },
  };
}

async function expectServing() {
  await vi.waitFor(async () => expect(await statusOf()).toBe(Status.SERVING), { timeout: 10_000 });
}

/** The process is up and serving, and every reservation it confirmed is whole. */
async function expectNothingLost(outcomes: readonly Outcome[]) {
  expect(service.alive(), service.stderr()).toBe(true);
  await expectServing();
  expect(await codeOf(reserve(randomUUID()))).toBeUndefined();
  const codes = new Set(outcomes.map((o) => o.code));
  for (const code of codes) expect([undefined, Code.Unavailable, Code.DeadlineExceeded]).toContain(code);
  const confirmed = outcomes.filter((o) => o.code === undefined).map((o) => o.orderId);
  if (confirmed.length > 0) {
    const rows = await db.selectFrom("reservation_lines").select("order_id").where("order_id", "in", confirmed).execute();
    expect(rows).toHaveLength(confirmed.length);
  }
  expect(await stockInconsistencies({ db })).toEqual([]);
}

/** Terminates the backends of the service's database (but the caller's) that match `where`. */
async function terminateBackends(where = "true") {
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on("error", () => {});
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND ${where}`,
    );
    return rows[0]!.n;
  } finally {
    await client.end();
  }
}

/**
 * A ReserveStock of `productId` whose transaction is open, waiting for the
 * row lock that `blocker`, a transaction of the test's, holds.
 */
async function reservationWaitingForLock(productId: string) {
  const blocker = new pg.Client({ connectionString: databaseUrl });
  blocker.on("error", () => {});
  await blocker.connect();
  await blocker.query("BEGIN");
  await blocker.query("SELECT 1 FROM stock_levels WHERE product_id = $1 FOR UPDATE", [productId]);
  const orderId = randomUUID();
  const waiting = codeOf(reserve(orderId, productId, 20_000));
  await vi.waitFor(async () => {
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
    `.execute(db);
    expect(rows[0]!.n).toBeGreaterThan(0);
  });
  return { blocker, orderId, waiting };
}

beforeAll(async () => {
  postgres = await startOwnPostgres();
  databaseUrl = postgres.url("inventory");
  await ensureDatabase(databaseUrl);
  const credentials = await testCredentials();
  service = await startService("inventory-service", {
    ...credentials.env,
    DATABASE_URL: databaseUrl,
    METRICS_PORT: "0",
    NODE_OPTIONS: SERVICE_NODE_OPTIONS,
    HEALTH_CHECK_INTERVAL_MS: "100",
    DB_POOL_SIZE: "8",
    LOG_LEVEL: "silent",
  });
  inventory = createClient(InventoryService, createGrpcTransport({ baseUrl: service.url, interceptors: [credentials.operator] }));
  health = createClient(Health, createGrpcTransport({ baseUrl: service.url }));
  db = createDatabase({ url: databaseUrl, poolSize: 2 });
  await expectServing();
  productIds = [];
  for (let i = 0; i < 4; i++) {
    const { product } = await inventory.createProduct({ sku: `OUTAGE-${i}-${Date.now()}`, name: "Outage", priceMinor: 100n, currency: "USD", initialStock: 1_000_000 });
    productIds.push(product!.id);
  }
}, 60_000);

afterAll(async () => {
  await service?.crash();
  await db?.destroy();
  await postgres?.close();
});

describe("a PostgreSQL restart", () => {
  it("while idle: NOT_SERVING and UNAVAILABLE while it is down, SERVING again by itself", async () => {
    await postgres.stop();
    await vi.waitFor(async () => expect(await statusOf()).toBe(Status.NOT_SERVING), { timeout: 5000 });
    const started = performance.now();
    expect(await codeOf(reserve(randomUUID()))).toBe(Code.Unavailable);
    expect(await codeOf(inventory.listProducts({}))).toBe(Code.Unavailable);
    expect(performance.now() - started).toBeLessThan(2000);
    await postgres.start();
    await expectNothingLost([]);
  });

  it("under load: every call is OK or UNAVAILABLE, and every confirmed reservation is whole", async () => {
    const traffic = load(8);
    await sleep(300);
    await postgres.stop();
    await sleep(500);
    await postgres.start();
    await expectServing();
    await sleep(300);
    const outcomes = await traffic.stop();
    expect(outcomes.some((o) => o.code === undefined)).toBe(true);
    expect(outcomes.some((o) => o.code === Code.Unavailable)).toBe(true);
    await expectNothingLost(outcomes);
  });

  it("with a reservation's transaction open: that call is UNAVAILABLE (or OK, had it committed first) and the process stays up", async () => {
    const { blocker, orderId, waiting } = await reservationWaitingForLock(productIds[1]!);
    try {
      await postgres.stop();
      // A fast shutdown ends the blocker and the waiting call together; the
      // call may get the lock and commit first.
      expect([Code.Unavailable, undefined]).toContain(await waiting);
    } finally {
      await blocker.end().catch(() => {});
      await postgres.start();
    }
    await expectNothingLost([{ orderId, code: await waiting }]);
  });
});

describe("backends terminated with pg_terminate_backend", () => {
  it("while idle: the pool replaces its connections and calls go on", async () => {
    await expectServing();
    expect(await terminateBackends()).toBeGreaterThan(0);
    await sleep(200);
    const codes = await Promise.all(Array.from({ length: 20 }, () => codeOf(reserve(randomUUID()))));
    expect(codes.filter((c) => c !== undefined)).toEqual([]);
    await expectNothingLost([]);
  });

  it("under load: every call is OK or UNAVAILABLE", async () => {
    const traffic = load(8);
    for (let i = 0; i < 3; i++) {
      await sleep(200);
      await terminateBackends();
    }
    await sleep(300);
    await expectNothingLost(await traffic.stop());
  });

  it("during a reservation's transaction: that call is UNAVAILABLE, nothing of it is written", async () => {
    const { blocker, orderId, waiting } = await reservationWaitingForLock(productIds[2]!);
    try {
      expect(await terminateBackends("wait_event_type = 'Lock'")).toBe(1);
      expect(await waiting).toBe(Code.Unavailable);
    } finally {
      await blocker.end().catch(() => {});
    }
    await expectNothingLost([]);
    expect(await db.selectFrom("reservations").select("order_id").where("order_id", "=", orderId).execute()).toEqual([]);
  });
});
