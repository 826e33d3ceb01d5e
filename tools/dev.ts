/**
 * `make dev`: one PostgreSQL (embedded under .data/ unless DATABASE_URL
 * names a server), a database per service, the development token issuer,
 * both services with readable logs, and tokens to call them with (printed,
 * and in .data/tokens.env). Ctrl-C stops everything cleanly.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { connect } from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { prettyFactory } from "pino-pretty";
import { INVENTORY_API, ORDERS_API } from "@ecommerce/auth/audiences.ts";
import { mintToken, startDevIssuer, type DevIssuer } from "@ecommerce/auth/dev-issuer.ts";
import { INVENTORY_ADMIN, INVENTORY_READ, ORDERS_CANCEL_ANY, ORDERS_FULFIL, ORDERS_READ_ALL } from "@ecommerce/auth/scopes.ts";
import { DEV_INVENTORY_CLIENT } from "../services/order-service/src/config.ts";
import { DEV_POSTGRES, ensureDatabase, externalPostgres, repoRoot, type PostgresServer } from "./postgres.ts";
import { SERVICE_NODE_OPTIONS } from "./runtime.ts";
import { DEV_ISSUER_DIR } from "./token.ts";

const inventoryPort = Number(process.env.INVENTORY_PORT ?? 9090);
const orderPort = Number(process.env.ORDER_PORT ?? 8080);

const pretty = prettyFactory({ colorize: process.stdout.isTTY, translateTime: "HH:MM:ss.l", ignore: "pid,hostname", singleLine: true });
const children: ChildProcess[] = [];
let stopping = false;
let issuer: DevIssuer | undefined;
/** Where the printed tokens are kept, for `source`. */
const TOKENS_FILE = path.join(repoRoot, ".data", "tokens.env");
/** The printed tokens last a working day. */
const TOKEN_TTL_SECONDS = 24 * 60 * 60;
/** The scopes of the printed staff and inventory admin tokens. */
const STAFF_SCOPES = [ORDERS_READ_ALL, ORDERS_FULFIL, ORDERS_CANCEL_ANY];
const INVENTORY_ADMIN_SCOPES = [INVENTORY_ADMIN, INVENTORY_READ];

// Each child runs in a process group of its own, so Ctrl-C reaches only this
// runner, which stops them in order: orders, inventory, then PostgreSQL.
const server = process.env.DATABASE_URL ? externalPostgres(process.env.DATABASE_URL) : await startDevPostgres();
const inventoryDb = process.env.INVENTORY_DATABASE_URL ?? server.url("inventory");
const ordersDb = process.env.ORDER_DATABASE_URL ?? server.url("orders");
await Promise.all([ensureDatabase(inventoryDb), ensureDatabase(ordersDb)]);

process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

// The stand-in for the identity provider, first: both services fetch its
// keys, and the order service gets its own token for inventory from it.
issuer = await startDevIssuer({
  dir: DEV_ISSUER_DIR,
  clients: [
    {
      clientId: DEV_INVENTORY_CLIENT.clientId,
      clientSecret: DEV_INVENTORY_CLIENT.clientSecret,
      scopes: DEV_INVENTORY_CLIENT.scopes,
      audiences: [DEV_INVENTORY_CLIENT.audience],
    },
  ],
});
const trustIssuer = { AUTH_ISSUER: issuer.issuer, AUTH_JWKS_URL: issuer.jwksUrl };

start("inventory", "services/inventory-service/src/main.ts", {
  SERVER_PORT: String(inventoryPort),
  DATABASE_URL: inventoryDb,
  RUN_SEEDER: process.env.RUN_SEEDER ?? "true",
  ...trustIssuer,
  AUTH_AUDIENCE: INVENTORY_API,
});
await waitFor(`inventory-service on port ${inventoryPort}`, () => listening(inventoryPort));
start("orders", "services/order-service/src/main.ts", {
  SERVER_PORT: String(orderPort),
  DATABASE_URL: ordersDb,
  INVENTORY_SERVICE_URL: `http://127.0.0.1:${inventoryPort}`,
  ...trustIssuer,
  AUTH_AUDIENCE: ORDERS_API,
  INVENTORY_TOKEN_URL: issuer.tokenUrl,
  INVENTORY_CLIENT_ID: DEV_INVENTORY_CLIENT.clientId,
  INVENTORY_CLIENT_SECRET: DEV_INVENTORY_CLIENT.clientSecret,
});
await waitFor(`order-service on port ${orderPort}`, () => reachable(`http://127.0.0.1:${orderPort}/readyz`));

const tokens = await mintDevTokens(issuer);
await writeFile(TOKENS_FILE, Object.entries(tokens).map(([name, token]) => `export ${name}=${token}\n`).join(""), { mode: 0o600 });

console.log(`
  The system is up. Ctrl-C stops it.

  order-service      http://localhost:${orderPort}/api/v1   (REST; Swagger UI at http://localhost:${orderPort}/docs)
  inventory-service  http://localhost:${inventoryPort}          (gRPC, gRPC-Web and Connect; server reflection)
  token issuer       ${issuer.issuer}   (development only; JWKS at ${issuer.jwksUrl})
  PostgreSQL         ${redact(inventoryDb)}  and  ${redact(ordersDb)}

  Every API call needs a bearer token. These last 24 hours (more: make token SUB=...):
    ALICE            a customer
    BOB              another customer
    STAFF            ${STAFF_SCOPES.join(" ")}
    INVENTORY_ADMIN  for inventory: ${INVENTORY_ADMIN_SCOPES.join(" ")}
  In another terminal, load them with:
    source .data/tokens.env
  or paste:
${Object.entries(tokens).map(([name, token]) => `    export ${name}=${token}`).join("\n")}

  Place a first order, as alice:
    curl -s -X POST http://localhost:${orderPort}/api/v1/orders \\
      -H "authorization: Bearer $ALICE" \\
      -H 'content-type: application/json' \\
      -d '{"items":[{"product_id":"00000000-0000-4000-8000-000000000002","quantity":1}]}'

  Her orders (bob sees only his; staff see everyone's):
    curl -s http://localhost:${orderPort}/api/v1/orders -H "authorization: Bearer $ALICE"

  Ask inventory directly:
    npx buf curl --protocol grpc --http2-prior-knowledge \\
      -H "authorization: Bearer $INVENTORY_ADMIN" \\
      http://localhost:${inventoryPort}/inventory.v1.InventoryService/ListProducts -d '{}'

${eventsBanner()}`);

/** How to watch the events: from the broker when there is one, from the outboxes always. */
function eventsBanner(): string {
  const recorded = `curl -s http://localhost:${orderPort}/api/v1/events -H "authorization: Bearer $STAFF"`;
  if (process.env.NATS_URL) {
    return `  Events are published to NATS at ${process.env.NATS_URL}. Watch them flow, in another terminal:
    make events
  They are also kept in each service's outbox:
    ${recorded}
`;
  }
  return `  Events are recorded in each service's outbox (no broker is set):
    ${recorded}
  To publish them to NATS JetStream and watch them with \`make events\`:
    NATS_URL=nats://127.0.0.1:4222 make dev
`;
}

/** Tokens for trying the system: two customers, a staff member, an inventory admin. */
async function mintDevTokens(dev: DevIssuer): Promise<Record<string, string>> {
  const mint = (subject: string, audience: string, scopes: string[] = []) =>
    mintToken({ dir: DEV_ISSUER_DIR, issuer: dev.issuer, subject, audience, scopes, ttlSeconds: TOKEN_TTL_SECONDS });
  return {
    ALICE: await mint("alice", ORDERS_API),
    BOB: await mint("bob", ORDERS_API),
    STAFF: await mint("staff", ORDERS_API, STAFF_SCOPES),
    INVENTORY_ADMIN: await mint("catalogue-admin", INVENTORY_API, INVENTORY_ADMIN_SCOPES),
  };
}

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
  await issuer?.close();
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
