import { randomUUID } from "node:crypto";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { startInventoryServer, type InventoryServer } from "@ecommerce/inventory-service/src/server.ts";
import { checkConsistency } from "@ecommerce/tools/check-consistency.ts";
import { ensureDatabase } from "@ecommerce/tools/postgres.ts";
import { startService, type ServiceProcess } from "@ecommerce/tools/processes.ts";
import { createTestDatabase, startOwnPostgres, type OwnPostgres } from "@ecommerce/tools/testing.ts";
import pg from "pg";
import { afterAll, beforeAll, expect, test } from "vitest";
import { bearer, eventually, ORDER_SERVICE_AUTH_ENV, INVENTORY_AUTH, inventoryAdmin } from "./system.ts";

/**
 * The orders database goes away and comes back (a restart, terminated
 * backends, with requests and transactions in flight) under the order
 * service running as a process of its own. The process must stay up,
 * readiness must follow the database by itself, requests in the window must
 * get 503 database_unavailable, and afterwards every order must be settled
 * consistently with inventory.
 */

let postgres: OwnPostgres;
let ordersDb: string;
let inventoryDb: string;
let inventoryServer: InventoryServer;
let sessions: Http2SessionManager;
let inventory: Client<typeof InventoryService>;
let service: ServiceProcess;
let product: string;

beforeAll(async () => {
  postgres = await startOwnPostgres();
  ordersDb = postgres.url("orders");
  await ensureDatabase(ordersDb);
  inventoryDb = await createTestDatabase("dbrestart_inventory");
  inventoryServer = await startInventoryServer({ databaseUrl: inventoryDb, auth: INVENTORY_AUTH });
  sessions = new Http2SessionManager(inventoryServer.url);
  inventory = createClient(InventoryService, createGrpcTransport({ baseUrl: inventoryServer.url, sessionManager: sessions, interceptors: [inventoryAdmin] }));
  service = await startService("order-service", {
    ...ORDER_SERVICE_AUTH_ENV,
    DATABASE_URL: ordersDb,
    INVENTORY_SERVICE_URL: inventoryServer.url,
    RECONCILE_INTERVAL_MS: "100",
    PENDING_GRACE_MS: "1000",
    PENDING_GIVE_UP_MS: "30000",
    INVENTORY_TIMEOUT_MS: "1000",
    RATE_LIMIT_MAX: "0",
    LOG_REQUESTS: "false",
  });
  const { product: created } = await inventory.createProduct({
    sku: `DBRESTART-${randomUUID().slice(0, 8)}`,
    name: "Database restart test product",
    priceMinor: 1000n,
    currency: "USD",
    initialStock: 100_000,
  });
  product = created!.id;
});

afterAll(async () => {
  sessions?.abort();
  await service?.stop();
  await inventoryServer?.close();
  await postgres?.close();
});

interface Answer {
  status: number;
  code?: string;
  retryAfter: string | null;
  id?: string;
}

async function request(path: string, init: { method?: string; body?: unknown; key?: string } = {}): Promise<Answer> {
  const res = await fetch(`${service.url}${path}`, {
    method: init.method ?? (init.body ? "POST" : "GET"),
    headers: {
      authorization: await bearer("dbrestart"),
      ...(init.body ? { "content-type": "application/json" } : {}),
      ...(init.key ? { "idempotency-key": init.key } : {}),
    },
    body: init.body ? JSON.stringify(init.body) : undefined,
  });
  const body = (await res.json()) as { code?: string; id?: string };
  return { status: res.status, code: body.code, id: body.id, retryAfter: res.headers.get("retry-after") };
}

const place = (key: string = randomUUID()) =>
  request("/api/v1/orders", { body: { user_id: "dbrestart", items: [{ product_id: product, quantity: 1 }] }, key });

/** Waits until /readyz answers `status`, and says how long that took. */
async function readiness(status: number, timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  await eventually(async () => expect((await request("/readyz")).status).toBe(status), timeoutMs);
  return Date.now() - started;
}

/** What a client may see while the database is away: a final answer, or 503 database_unavailable with Retry-After. */
function expectAnswerInTheWindow(answer: Answer) {
  if (answer.status === 503) {
    expect(answer.code).toBe("database_unavailable");
    expect(answer.retryAfter).toBe("2");
  } else {
    expect(answer.status).toBe(201);
  }
}

/** Every order settled (none pending, every stock action acknowledged) and consistent with inventory. */
async function expectConverged() {
  const report = await eventually(async () => {
    const current = await checkConsistency({ ordersUrl: ordersDb, inventoryUrl: inventoryDb, recheckAfterMs: 50 });
    expect(current.inProgress).toBe(0);
    return current;
  }, 30_000);
  expect(report.findings).toEqual([]);
  const db = new pg.Client(ordersDb);
  await db.connect();
  try {
    const { rows } = await db.query<{ n: string }>("SELECT count(*) AS n FROM orders WHERE status = 'pending'");
    expect(Number(rows[0]!.n)).toBe(0);
  } finally {
    await db.end();
  }
}

function expectStillUp() {
  expect(service.alive(), service.stderr()).toBe(true);
  expect(service.stderr()).not.toMatch(/Unhandled|uncaught/i);
}

/** Places `count` orders spread over about `spreadMs`, calling `midway` once a fifth have been answered. */
async function burst(count: number, spreadMs: number, midway: () => Promise<void>) {
  let answered = 0;
  let fired: Promise<void> | undefined;
  const outcomes = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      await new Promise((resolve) => setTimeout(resolve, (i * spreadMs) / count));
      const key = randomUUID();
      const answer = await place(key);
      if (++answered === Math.floor(count / 5)) fired = midway();
      return { key, answer };
    }),
  );
  await fired;
  return outcomes;
}

test("a restart while idle: 503 database_unavailable and not ready while it is down, ready again by itself", async () => {
  const before = await place();
  expect(before.status).toBe(201);
  await readiness(200);

  await postgres.stop();
  await readiness(503, 5000);
  expectAnswerInTheWindow(await request(`/api/v1/orders/${before.id}`));
  const refused = await place();
  expect(refused).toMatchObject({ status: 503, code: "database_unavailable" });
  expectStillUp();

  await postgres.start();
  await readiness(200);
  expect((await request(`/api/v1/orders/${before.id}`)).status).toBe(200);
  expect((await place()).status).toBe(201);
  expectStillUp();
  await expectConverged();
});

test("a restart under load: every order is answered, settles, and matches inventory", async () => {
  const outcomes = await burst(150, 1500, async () => {
    await postgres.stop();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await postgres.start();
  });
  for (const { answer } of outcomes) expectAnswerInTheWindow(answer);
  expect(outcomes.some(({ answer }) => answer.status === 503)).toBe(true);
  await readiness(200);
  expectStillUp();
  await expectConverged();

  // A client retrying its 503 with the same key gets its order's final answer.
  const retried = await Promise.all(outcomes.filter(({ answer }) => answer.status === 503).map(({ key }) => place(key)));
  expect(retried.map((answer) => answer.status).filter((status) => status !== 201)).toEqual([]);
  await expectConverged();
});

test("a restart while transactions are held open: the requests blocked in them get 503, then service resumes", async () => {
  // Another session holds a long transaction with the orders table locked:
  // the service's requests block inside their own statements.
  const holder = new pg.Client(ordersDb);
  holder.on("error", () => {});
  await holder.connect();
  await holder.query("BEGIN");
  await holder.query("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE");
  const blocked = Promise.all(Array.from({ length: 10 }, () => place()));
  await new Promise((resolve) => setTimeout(resolve, 300));

  await postgres.stop();
  const answers = await blocked;
  expect(answers.map((a) => [a.status, a.code])).toEqual(answers.map(() => [503, "database_unavailable"]));
  await holder.end().catch(() => {});
  await postgres.start();

  await readiness(200);
  expect((await place()).status).toBe(201);
  expectStillUp();
  await expectConverged();
});

test("the pool's backends terminated, idle and under load: the pool replaces them", async () => {
  const admin = new pg.Client(postgres.url("postgres"));
  await admin.connect();
  const terminate = () =>
    admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'orders' AND pid <> pg_backend_pid()");
  try {
    expect((await place()).status).toBe(201);
    await terminate();
    // The idle connections are gone; the next requests get new ones.
    for (let i = 0; i < 5; i++) expectAnswerInTheWindow(await place());
    expect((await place()).status).toBe(201);

    const outcomes = await burst(100, 1000, async () => {
      await terminate();
    });
    for (const { answer } of outcomes) expectAnswerInTheWindow(answer);
  } finally {
    await admin.end();
  }
  await readiness(200);
  expectStillUp();
  await expectConverged();
});
