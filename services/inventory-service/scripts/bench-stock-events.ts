/**
 * What recording the stock events costs the hot paths: batches of 500
 * orders reserved, released and committed, with the event triggers
 * (migration 0004) and without them (the schema of 0003), on two fresh
 * databases of one server, in alternating rounds so that both see the same
 * machine.
 *
 *   node services/inventory-service/scripts/bench-stock-events.ts [--rounds N]
 *
 * Uses BENCH_DATABASE_URL's server when given, an embedded PostgreSQL
 * otherwise. Times are of the service's own functions (one reserve_orders()
 * call, one release or commit transaction), as the RPCs run them.
 */
import { randomUUID } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { sql, type Kysely } from "kysely";
import { Migrator, type Migration } from "kysely/migration";
import { ensureDatabase, externalPostgres, startEmbeddedPostgres, type PostgresServer } from "@ecommerce/tools/postgres.ts";
import { createDatabase, type Database } from "../src/db/database.ts";
import * as initial from "../src/db/migrations/0001_initial.ts";
import * as reserveStockFunction from "../src/db/migrations/0002_reserve_stock_function.ts";
import * as reserveOrdersFunction from "../src/db/migrations/0003_reserve_orders_function.ts";
import * as stockEvents from "../src/db/migrations/0004_stock_events.ts";
import { commitOrders, releaseOrders, reserveOrders, type ReserveInput } from "../src/stock/reservations.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "15" } } });
const rounds = Number(values.rounds);
const PRODUCTS = 1000;
const BATCH = 500;

const MIGRATIONS: Record<string, Migration> = {
  "0001_initial": initial,
  "0002_reserve_stock_function": reserveStockFunction,
  "0003_reserve_orders_function": reserveOrdersFunction,
  "0004_stock_events": stockEvents,
};

async function database(server: PostgresServer, name: string, upTo: string): Promise<Kysely<Database>> {
  const url = server.url(`bench_stock_events_${name}_${randomUUID().slice(0, 8)}`);
  await ensureDatabase(url);
  const db = createDatabase({ url, poolSize: 1 });
  const migrator = new Migrator({ db: db as Kysely<any>, provider: { getMigrations: async () => MIGRATIONS } });
  const { error } = await migrator.migrateTo(upTo);
  if (error) throw error;
  // Stock no batch can exhaust, so that every round reserves in full.
  await sql`
    WITH p AS (
      INSERT INTO products (sku, name, price_minor, currency)
      SELECT 'BENCH-' || g, 'Bench ' || g, 1000 + g, 'USD' FROM generate_series(1, ${PRODUCTS}) g RETURNING id
    )
    INSERT INTO stock_levels (product_id, on_hand) SELECT id, 1000000000 FROM p
  `.execute(db);
  return db;
}

type Step = "reserve 500 × 1 line, 1 product" | "reserve 500 × 10 lines" | "release 500" | "commit 500";

/** One round of every step; the time of each in ms. */
async function round(db: Kysely<Database>, productIds: readonly string[]): Promise<Record<Step, number>> {
  const time = async (work: () => Promise<unknown>) => {
    const started = performance.now();
    await work();
    return performance.now() - started;
  };
  const orders = (lines: number): ReserveInput[] =>
    Array.from({ length: BATCH }, (_, i) => ({
      orderId: randomUUID(),
      actor: "bench",
      lines: Array.from({ length: lines }, (_, j) => ({ productId: productIds[(i * lines + j * 97) % productIds.length]!, quantity: 1 })),
    }));
  const flash = orders(1).map((o) => ({ ...o, lines: [{ productId: productIds[0]!, quantity: 1 }] }));
  const wide = orders(10);
  return {
    "reserve 500 × 1 line, 1 product": await time(() => reserveOrders(db, flash, 900, 0)),
    "reserve 500 × 10 lines": await time(() => reserveOrders(db, wide, 900, 0)),
    "release 500": await time(() => releaseOrders(db, wide.map((o) => ({ orderId: o.orderId, reason: "bench", actor: "bench" })), 0)),
    "commit 500": await time(() => commitOrders(db, flash.map((o) => ({ orderId: o.orderId, actor: "bench" })), 0)),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

let dir: string | undefined;
let server: PostgresServer;
if (process.env.BENCH_DATABASE_URL) {
  server = externalPostgres(process.env.BENCH_DATABASE_URL);
} else {
  dir = mkdtempSync(path.join(os.tmpdir(), "bench-stock-events-"));
  // The server may run as another user (see startEmbeddedPostgres).
  chmodSync(dir, 0o755);
  server = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), persistent: false });
}
try {
  const without = await database(server, "without", "0003_reserve_orders_function");
  const withEvents = await database(server, "with", "0004_stock_events");
  const { rows: version } = await sql<{ v: string }>`SELECT current_setting('server_version') AS v`.execute(without);
  const results = { without: [] as Record<Step, number>[], with: [] as Record<Step, number>[] };
  const idsOf = async (db: Kysely<Database>) => (await db.selectFrom("products").select("id").orderBy("id").execute()).map((p) => p.id);
  const ids = { without: await idsOf(without), with: await idsOf(withEvents) };
  // A warm-up round each, not counted.
  await round(without, ids.without);
  await round(withEvents, ids.with);
  for (let i = 0; i < rounds; i++) {
    results.without.push(await round(without, ids.without));
    results.with.push(await round(withEvents, ids.with));
  }
  const { count } = (await withEvents.selectFrom("outbox").select((eb) => eb.fn.countAll<bigint>().as("count")).executeTakeFirstOrThrow());
  console.log(`PostgreSQL ${version[0]!.v}, ${rounds} rounds, median ms; ${count} events recorded in all`);
  console.log("| step | without events | with events | cost |");
  console.log("| --- | ---: | ---: | ---: |");
  for (const step of Object.keys(results.without[0]!) as Step[]) {
    const a = median(results.without.map((r) => r[step]));
    const b = median(results.with.map((r) => r[step]));
    console.log(`| ${step} | ${a.toFixed(1)} | ${b.toFixed(1)} | +${(b - a).toFixed(1)} ms (${(((b - a) / a) * 100).toFixed(0)}%) |`);
  }
  await without.destroy();
  await withEvents.destroy();
} finally {
  await server.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
