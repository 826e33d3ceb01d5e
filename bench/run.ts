/**
 * `make bench`: orders per second as clients see them, against the
 * database's own ceiling for the same work, measured in one run.
 *
 *   pnpm bench [--duration SECONDS] [--profile]
 *
 * --profile starts the services with `node --cpu-prof`, writing .cpuprofile
 * files under bench/results/profiles/ (open them in Chrome DevTools).
 *
 * Without ORDER_SERVICE_URL and INVENTORY_SERVICE_URL it starts the system on
 * a fresh embedded PostgreSQL, trusting a token issuer of its own; with them
 * it loads the running services (and measures the ceiling on
 * BENCH_DATABASE_URL's server, when given, and inventory's batch sizes from
 * INVENTORY_METRICS_URL, when given), calling them with BENCH_ORDERS_TOKEN (a
 * customer's, for orders-api) and BENCH_INVENTORY_TOKEN (for inventory-api,
 * with inventory:admin and inventory:reserve).
 *
 * Each row also shows how the services batched meanwhile: the mean size and
 * count of the batches of every step, from the deltas of their
 * *_batch_size{step} histograms (order service GET /metrics, inventory's
 * METRICS_PORT).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import http from "node:http";
import { randomUUID } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { ensureDatabase, externalPostgres, freePort, repoRoot, startEmbeddedPostgres, type PostgresServer } from "@ecommerce/tools/postgres.ts";
import { SERVICE_NODE_OPTIONS } from "@ecommerce/tools/runtime.ts";
import { createTestIssuer } from "@ecommerce/tools/test-tokens.ts";
import { INVENTORY_API, ORDERS_API } from "../packages/auth/src/audiences.ts";
import autocannon from "autocannon";
import * as hdr from "hdr-histogram-js";
import pg from "pg";

const { values: args } = parseArgs({ options: { duration: { type: "string", default: "10" }, profile: { type: "boolean", default: false } } });
const seconds = Number(args.duration);
const concurrencies = [16, 64];
const PRODUCTS = 1000;
/** The flash sale's buyers come as through a load balancer: over at most this many connections, inside the order service's default bound of 512. */
const SALE_CONNECTIONS = 500;

interface Row {
  scenario: string;
  connections: number;
  ordersPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  errors: number;
  ratioToCeiling?: number | null;
  avgMs?: number;
  /** Batches each step ran during the row, from the services' /metrics: count, mean size and count per size bucket. */
  batches?: Record<string, BatchDelta>;
  /** Flash sale: confirmed and rejected orders, and the time until the last unit was sold. */
  sale?: { units: number; buyers: number; confirmed: number; rejected: number; sellOutMs: number };
}

interface BatchDelta {
  batches: number;
  meanSize: number;
  /** Batches per size bucket, by the bucket's upper bound. */
  sizes: Record<string, number>;
}

const cleanup: Array<() => Promise<void> | void> = [];
process.on("SIGINT", () => void finish(130));

const env = await startSystem();
const inventory = createClient(InventoryService, createGrpcTransport({ baseUrl: env.inventoryUrl, interceptors: [withToken(env.inventoryToken)] }));
/** Orders are placed for the token's subject, one customer. */
const ordersAuthorization = `Bearer ${env.ordersToken}`;
console.log(`creating ${PRODUCTS} products with ample stock...`);
const productIds = await createCatalogue(inventory);

const rows: Row[] = [];
console.log("warming up...");
await loadOrders(() => pick(1), 16, 3);
rows.push(await measured("POST /orders, 1 item", 1, () => loadOrders(() => pick(1), 1, seconds)));
for (const items of [1, 3]) {
  for (const c of concurrencies) rows.push(await measured(`POST /orders, ${items} item${items > 1 ? "s" : ""}`, c, () => loadOrders(() => pick(items), c, seconds)));
}
const hot = productIds[0]!;
rows.push(await measured("POST /orders, 1 item, all one product", 64, () => loadOrders(() => [{ product_id: hot, quantity: 1 }], 64, seconds)));
rows.push(await measured("flash sale: 1,000 units, 5,000 buyers at once", SALE_CONNECTIONS, () => flashSale(1000, 5000)));
for (const c of concurrencies) rows.push(await measured("gRPC ReserveStock, 1 line", c, () => loadReserve(c, seconds)));
// The flash sale is one burst, not a rate: it is compared with nothing.
const ceiling = env.ceilingUrl ? concurrencies.map((c) => ({ scenario: "ceiling: pgbench, least SQL per order", connections: c, ...pgbench(env.ceilingUrl!, c, seconds) })) : [];
for (const row of rows) {
  // One connection is compared with the ceiling at 16: the ceiling at one client says little about the system.
  const base = row.sale ? undefined : ceiling.find((r) => r.connections === Math.max(16, row.connections));
  row.ratioToCeiling = base ? round(row.ordersPerSecond / base.ordersPerSecond, 2) : null;
}
rows.push(...ceiling);

const rss = Object.fromEntries(env.processes.map(([name, child]) => [name, peakRssMb(child)]));
const result = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memoryGb: round(os.totalmem() / 2 ** 30, 1), node: process.version, postgres: env.postgresVersion },
  durationSeconds: seconds,
  rows,
  peakRssMb: rss,
};
printTable(result.rows, rss);
mkdirSync(path.join(repoRoot, "bench", "results"), { recursive: true });
writeFileSync(path.join(repoRoot, "bench", "results", "latest.json"), `${JSON.stringify(result, null, 2)}\n`);
console.log("\nwritten to bench/results/latest.json");
await finish(0);

async function startSystem() {
  const processes: Array<[string, ChildProcess]> = [];
  if (process.env.ORDER_SERVICE_URL && process.env.INVENTORY_SERVICE_URL) {
    const ceilingUrl = process.env.BENCH_DATABASE_URL ? await scratchDatabase(externalPostgres(process.env.BENCH_DATABASE_URL)) : undefined;
    const [ordersToken, inventoryToken] = [process.env.BENCH_ORDERS_TOKEN, process.env.BENCH_INVENTORY_TOKEN];
    if (!ordersToken || !inventoryToken) throw new Error("set BENCH_ORDERS_TOKEN and BENCH_INVENTORY_TOKEN to load running services");
    return { orderUrl: process.env.ORDER_SERVICE_URL, inventoryUrl: process.env.INVENTORY_SERVICE_URL, inventoryMetricsUrl: process.env.INVENTORY_METRICS_URL, ceilingUrl, processes, postgresVersion: ceilingUrl ? await serverVersion(ceilingUrl) : "unknown", ordersToken, inventoryToken };
  }
  const issuer = await createTestIssuer();
  const inventoryToken = await issuer.token("bench", { audience: INVENTORY_API, scopes: ["inventory:admin", "inventory:read", "inventory:reserve"] });
  const dir = mkdtempSync(path.join(os.tmpdir(), "ecom-bench-"));
  chmodSync(dir, 0o755);
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  console.log("starting PostgreSQL on a fresh data directory...");
  const server = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), persistent: false });
  cleanup.unshift(() => server.stop());
  const [inventoryDb, ordersDb] = [server.url("inventory"), server.url("orders")];
  await Promise.all([ensureDatabase(inventoryDb), ensureDatabase(ordersDb)]);
  const [inventoryPort, orderPort, inventoryMetricsPort] = [await freePort(), await freePort(), await freePort()];
  const common = { NODE_ENV: "production", SERVER_HOST: "127.0.0.1", LOG_LEVEL: "warn" };
  processes.push(["inventory-service", service("services/inventory-service/src/main.ts", { ...common, ...issuer.env(INVENTORY_API), SERVER_PORT: String(inventoryPort), METRICS_PORT: String(inventoryMetricsPort), DATABASE_URL: inventoryDb, RUN_SEEDER: "false" })]);
  const inventoryUrl = `http://127.0.0.1:${inventoryPort}`;
  await waitUntil(() => ping(createClient(InventoryService, createGrpcTransport({ baseUrl: inventoryUrl, interceptors: [withToken(inventoryToken)] }))));
  const orderServiceToken = await issuer.token("order-service", { audience: INVENTORY_API, scopes: ["inventory:read", "inventory:reserve"], clientId: "order-service" });
  processes.push(["order-service", service("services/order-service/src/main.ts", { ...common, ...issuer.env(ORDERS_API), INVENTORY_TOKEN: orderServiceToken, SERVER_PORT: String(orderPort), DATABASE_URL: ordersDb, INVENTORY_SERVICE_URL: inventoryUrl, RATE_LIMIT_MAX: "0" })]);
  const orderUrl = `http://127.0.0.1:${orderPort}`;
  await waitUntil(async () => (await fetch(`${orderUrl}/readyz`).catch(() => undefined))?.ok === true);
  const ceilingUrl = await scratchDatabase(server);
  const inventoryMetricsUrl = `http://127.0.0.1:${inventoryMetricsPort}/metrics`;
  const ordersToken = await issuer.token("bench", { audience: ORDERS_API });
  return { orderUrl, inventoryUrl, inventoryMetricsUrl, ceilingUrl, processes, postgresVersion: await serverVersion(ceilingUrl), ordersToken, inventoryToken };
}

function service(entry: string, env: Record<string, string>) {
  const profile = args.profile ? ["--cpu-prof", `--cpu-prof-dir=${path.join(repoRoot, "bench", "results", "profiles")}`] : [];
  const child = spawn(process.execPath, [...profile, path.join(repoRoot, entry)], { env: { ...process.env, NODE_OPTIONS: SERVICE_NODE_OPTIONS, ...env }, stdio: ["ignore", "inherit", "inherit"] });
  cleanup.unshift(() => new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : (child.once("exit", () => resolve()), child.kill("SIGTERM")))));
  return child;
}

async function scratchDatabase(server: PostgresServer) {
  const url = server.url("bench_ceiling");
  await ensureDatabase(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query("SET client_min_messages = warning");
  await client.query(readFileSync(path.join(repoRoot, "bench", "pgbench-setup.sql"), "utf8"));
  await client.end();
  return url;
}

async function serverVersion(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const { rows } = await client.query("SHOW server_version");
  await client.end();
  return rows[0].server_version as string;
}

/** Sends `token` as the bearer token of every inventory call. */
function withToken(token: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

async function ping(client: Client<typeof InventoryService>) {
  try {
    await client.listProducts({ pageSize: 1 }, { timeoutMs: 1000 });
    return true;
  } catch {
    return false;
  }
}

async function createCatalogue(client: Client<typeof InventoryService>) {
  const run = randomUUID().slice(0, 8);
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < PRODUCTS) {
        const i = next++;
        const { product } = await client.createProduct({ sku: `BENCH-${run}-${i}`, name: `Bench product ${i}`, priceMinor: 1000n + BigInt(i), currency: "USD", initialStock: 1_000_000_000 });
        ids.push(product!.id);
      }
    }),
  );
  return ids;
}

function pick(n: number) {
  const chosen = new Set<string>();
  while (chosen.size < n) chosen.add(productIds[Math.floor(Math.random() * productIds.length)]!);
  return [...chosen].map((product_id) => ({ product_id, quantity: 1 }));
}

async function loadOrders(items: () => { product_id: string; quantity: number }[], connections: number, duration: number): Promise<Omit<Row, "scenario" | "connections">> {
  const result = await autocannon({
    url: `${env.orderUrl}/api/v1/orders`,
    connections,
    duration,
    requests: [
      {
        method: "POST",
        headers: { "content-type": "application/json", authorization: ordersAuthorization },
        setupRequest: (req) => ({ ...req, body: JSON.stringify({ items: items() }) }),
      },
    ],
  });
  const created = Number(result.statusCodeStats?.["201"]?.count ?? 0);
  return { ordersPerSecond: round(created / result.duration, 0), p50Ms: result.latency.p50, p99Ms: result.latency.p99, errors: result.errors + result.timeouts + result.non2xx };
}

async function loadReserve(concurrency: number, duration: number): Promise<Omit<Row, "scenario" | "connections">> {
  const histogram = hdr.build();
  let ok = 0;
  let errors = 0;
  const started = performance.now();
  const end = started + duration * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        try {
          await inventory.reserveStock(create(InventoryService.method.reserveStock.input, { orderId: randomUUID(), lines: pick(1).map((l) => ({ productId: l.product_id, quantity: 1 })) }), { timeoutMs: 5000 });
          ok++;
          histogram.recordValue(Math.round((performance.now() - t) * 1000));
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return { ordersPerSecond: round(ok / elapsed, 0), p50Ms: round(histogram.getValueAtPercentile(50) / 1000, 1), p99Ms: round(histogram.getValueAtPercentile(99) / 1000, 1), errors };
}

/** Runs one row and adds the batch sizes each service's steps saw meanwhile. */
async function measured(scenario: string, connections: number, run: () => Promise<Omit<Row, "scenario" | "connections">>): Promise<Row> {
  const before = await batchHistograms();
  const row = await run();
  const after = await batchHistograms();
  const batches: Record<string, BatchDelta> = {};
  for (const [series, now] of Object.entries(after)) {
    const then = before[series];
    const count = now.count - (then?.count ?? 0);
    if (count === 0) continue;
    const sizes: Record<string, number> = {};
    let below = 0;
    for (const [le, cumulative] of Object.entries(now.buckets)) {
      const n = cumulative - (then?.buckets[le] ?? 0) - below;
      below += n;
      if (n > 0) sizes[le] = n;
    }
    batches[series] = { batches: count, meanSize: round((now.sum - (then?.sum ?? 0)) / count, 1), sizes };
  }
  return { scenario, connections, ...row, batches };
}

interface Histogram {
  count: number;
  sum: number;
  /** Cumulative counts by upper bound, in order. */
  buckets: Record<string, number>;
}

/** The batch-size histograms of both services, by "service.step". */
async function batchHistograms(): Promise<Record<string, Histogram>> {
  const sources: Array<[string, string | undefined]> = [
    ["orders", `${env.orderUrl}/metrics`],
    ["inventory", env.inventoryMetricsUrl],
  ];
  const all: Record<string, Histogram> = {};
  for (const [service, url] of sources) {
    if (!url) continue;
    const text = await fetch(url).then((r) => (r.ok ? r.text() : ""), () => "");
    for (const match of text.matchAll(/^\w+_batch_size_(bucket|sum|count)\{([^}]*)\} (\S+)$/gm)) {
      const [, kind, labels, value] = match as unknown as [string, string, string, string];
      const step = /step="([^"]+)"/.exec(labels)?.[1];
      if (!step) continue;
      const h = (all[`${service}.${step}`] ??= { count: 0, sum: 0, buckets: {} });
      if (kind === "bucket") h.buckets[/le="([^"]+)"/.exec(labels)?.[1] ?? "+Inf"] = Number(value);
      else h[kind as "sum" | "count"] = Number(value);
    }
  }
  return all;
}

/**
 * A flash sale: `buyers` clients ask for one unit each of a product with
 * `units` in stock, all at once. Exactly `units` orders must be confirmed
 * and the rest rejected; reports how long selling out took.
 */
async function flashSale(units: number, buyers: number): Promise<Omit<Row, "scenario" | "connections">> {
  const { product } = await inventory.createProduct({ sku: `SALE-${randomUUID().slice(0, 8)}`, name: "Flash sale", priceMinor: 999n, currency: "USD", initialStock: units });
  const agent = new http.Agent({ keepAlive: true, maxSockets: SALE_CONNECTIONS });
  const url = new URL(`${env.orderUrl}/api/v1/orders`);
  const histogram = hdr.build();
  let confirmed = 0;
  let rejected = 0;
  let errors = 0;
  let sellOutMs = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: buyers }, () => {
      const body = JSON.stringify({ items: [{ product_id: product!.id, quantity: 1 }] });
      return new Promise<void>((resolve) => {
        const t = performance.now();
        const req = http.request(url, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), authorization: ordersAuthorization } }, (res) => {
          res.resume();
          res.on("end", () => {
            histogram.recordValue(Math.round((performance.now() - t) * 1000));
            if (res.statusCode === 201 && ++confirmed === units) sellOutMs = performance.now() - started;
            else if (res.statusCode === 409) rejected++;
            else if (res.statusCode !== 201) errors++;
            resolve();
          });
        });
        req.on("error", () => {
          errors++;
          resolve();
        });
        req.end(body);
      });
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  if (confirmed !== units) errors += Math.abs(units - confirmed);
  return {
    ordersPerSecond: round(buyers / elapsed, 0),
    p50Ms: round(histogram.getValueAtPercentile(50) / 1000, 1),
    p99Ms: round(histogram.getValueAtPercentile(99) / 1000, 1),
    errors,
    sale: { units, buyers, confirmed, rejected, sellOutMs: round(sellOutMs, 0) },
  };
}

function pgbench(url: string, clients: number, duration: number): Omit<Row, "scenario" | "connections"> {
  const out = spawnSync("pgbench", ["-n", "-c", String(clients), "-j", "2", "-T", String(duration), "-f", path.join(repoRoot, "bench", "pgbench-order.sql"), url], { encoding: "utf8" });
  if (out.error || out.status !== 0) {
    console.error(`pgbench failed (${out.error?.message ?? out.stderr}); install the PostgreSQL client (apt-get install postgresql-client).`);
    return { ordersPerSecond: 0, p50Ms: null, p99Ms: null, errors: 1 };
  }
  const tps = Number(/^tps = ([\d.]+)/m.exec(out.stdout)?.[1]);
  const avg = Number(/^latency average = ([\d.]+) ms/m.exec(out.stdout)?.[1]);
  return { ordersPerSecond: round(tps, 0), p50Ms: null, p99Ms: null, errors: Number(/failed transactions: (\d+)/.exec(out.stdout)?.[1] ?? 0), ...(Number.isFinite(avg) ? { avgMs: avg } : {}) };
}

function peakRssMb(child: ChildProcess) {
  try {
    const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
    return round(Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) / 1024, 0);
  } catch {
    return null;
  }
}

function printTable(table: Row[], rssMb: Record<string, number | null>) {
  const header = ["scenario", "conns", "orders/s", "p50 ms", "p99 ms", "errors", "vs ceiling", "mean batch (batches)"];
  const batchCell = (r: Row) =>
    Object.entries(r.batches ?? {})
      .map(([series, b]) => `${series} ${b.meanSize} (${b.batches})`)
      .join(", ") || "-";
  const lines = table.map((r) => [r.scenario, String(r.connections), String(r.ordersPerSecond), r.p50Ms === null ? "-" : String(r.p50Ms), r.p99Ms === null ? "-" : String(r.p99Ms), String(r.errors), r.ratioToCeiling == null ? "-" : `${Math.round(r.ratioToCeiling * 100)}%`, batchCell(r)]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  console.log(`\n${fmt(header)}\n|${widths.map((w, i) => (i === 0 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`);
  for (const l of lines) console.log(fmt(l));
  for (const r of table) {
    if (r.sale) console.log(`\nflash sale: ${r.sale.confirmed} of ${r.sale.units} units sold to ${r.sale.buyers} buyers (${r.sale.rejected} rejected) in ${r.sale.sellOutMs} ms`);
  }
  console.log(`\npeak RSS: ${Object.entries(rssMb).map(([k, v]) => `${k} ${v ?? "?"} MB`).join(", ") || "not measured (running services)"}`);
}

async function waitUntil(check: () => Promise<boolean>) {
  const deadline = Date.now() + 60_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("the system did not become ready within 60 s");
    await new Promise((r) => setTimeout(r, 200));
  }
}

function round(n: number, digits: number) {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function finish(code: number) {
  for (const step of cleanup.splice(0)) await step();
  process.exit(code);
}
