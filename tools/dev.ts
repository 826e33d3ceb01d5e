/**
 * `make dev`: one PostgreSQL (embedded under .data/ unless DATABASE_URL
 * names a server), a database per service, both services with readable
 * logs. Ctrl-C stops everything cleanly.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { prettyFactory } from "pino-pretty";
import { DEV_POSTGRES, ensureDatabase, externalPostgres, repoRoot, type PostgresServer } from "./postgres.ts";
import { SERVICE_NODE_OPTIONS } from "./runtime.ts";

const inventoryPort = Number(process.env.INVENTORY_PORT ?? 9090);
const orderPort = Number(process.env.ORDER_PORT ?? 8080);

const pretty = prettyFactory({ colorize: process.stdout.isTTY, translateTime: "HH:MM:ss.l", ignore: "pid,hostname", singleLine: true });
const children: ChildProcess[] = [];
let stopping = false;

// Each child runs in a process group of its own, so Ctrl-C reaches only this
// runner, which stops them in order: orders, inventory, then PostgreSQL.
const server = process.env.DATABASE_URL ? externalPostgres(process.env.DATABASE_URL) : await startDevPostgres();
const inventoryDb = process.env.INVENTORY_DATABASE_URL ?? server.url("inventory");
const ordersDb = process.env.ORDER_DATABASE_URL ?? server.url("orders");
await Promise.all([ensureDatabase(inventoryDb), ensureDatabase(ordersDb)]);

process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

start("inventory", "services/inventory-service/src/main.ts", {
  SERVER_PORT: String(inventoryPort),
  DATABASE_URL: inventoryDb,
  RUN_SEEDER: process.env.RUN_SEEDER ?? "true",
});
await waitFor(`inventory-service on port ${inventoryPort}`, () => listening(inventoryPort));
start("orders", "services/order-service/src/main.ts", {
  SERVER_PORT: String(orderPort),
  DATABASE_URL: ordersDb,
  INVENTORY_SERVICE_URL: `http://127.0.0.1:${inventoryPort}`,
});
await waitFor(`order-service on port ${orderPort}`, () => reachable(`http://127.0.0.1:${orderPort}/readyz`));

console.log(`
  The system is up. Ctrl-C stops it.

  order-service      http://localhost:${orderPort}/api/v1   (REST; Swagger UI at http://localhost:${orderPort}/docs)
  inventory-service  http://localhost:${inventoryPort}          (gRPC, gRPC-Web and Connect; server reflection)
  PostgreSQL         ${redact(inventoryDb)}  and  ${redact(ordersDb)}

  Place a first order:
    curl -s -X POST http://localhost:${orderPort}/api/v1/orders \\
      -H 'content-type: application/json' \\
      -d '{"user_id":"alice","items":[{"product_id":"00000000-0000-4000-8000-000000000002","quantity":1}]}'

  Ask inventory directly:
    pnpm exec buf curl --protocol grpc --http2-prior-knowledge \\
      http://localhost:${inventoryPort}/inventory.v1.InventoryService/ListProducts -d '{}'
`);

async function startDevPostgres(): Promise<PostgresServer> {
  const child = start("postgres", "tools/dev-postgres.ts", {});
  await new Promise<void>((resolve) => createInterface({ input: child.stdout! }).on("line", (line) => line === "ready" && resolve()));
  return { ...externalPostgres(`postgres://postgres:postgres@127.0.0.1:${DEV_POSTGRES.port}/postgres`), stop: async () => {} };
}

function start(name: string, entry: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [path.join(repoRoot, entry)], {
    cwd: repoRoot,
    env: { NODE_OPTIONS: SERVICE_NODE_OPTIONS, ...process.env, NODE_ENV: process.env.NODE_ENV ?? "development", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  children.push(child);
  const label = `[${name}]`.padEnd(12);
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream! }).on("line", (line) => {
      process.stdout.write(`${label}${line.startsWith("{") ? pretty(line) : `${line}\n`}`);
    });
  }
  child.on("exit", (code, signal) => {
    if (stopping) return;
    console.error(`${label}exited (${signal ?? `code ${code}`}); stopping everything.`);
    void stop(1);
  });
  return child;
}

async function stop(code: number) {
  if (stopping) return;
  stopping = true;
  // Orders first: it drains its calls to inventory before inventory goes,
  // and PostgreSQL (started first) goes last.
  for (const child of [...children].reverse()) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
    }
  }
  process.exit(code);
}

// inventory speaks HTTP/2 only; an open port is enough, as order-service's
// readiness check then asks it over gRPC.
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true)).once("error", () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

async function reachable(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

async function waitFor(what: string, check: () => Promise<boolean>) {
  const deadline = Date.now() + 60_000;
  while (!stopping && !(await check())) {
    if (Date.now() > deadline) {
      console.error(`${what} did not become ready within 60 s.`);
      await stop(1);
    }
    await sleep(200);
  }
}

function redact(url: string) {
  const u = new URL(url);
  u.password = u.password ? "***" : "";
  return u.toString();
}
