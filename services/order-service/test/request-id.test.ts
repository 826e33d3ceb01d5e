import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { Writable } from "node:stream";
import { startInventoryServer, type InventoryServer } from "@ecommerce/inventory-service/src/server.ts";
import { freePort } from "@ecommerce/tools/postgres.ts";
import { createTestDatabase } from "@ecommerce/tools/testing.ts";
import pino from "pino";
import { afterAll, beforeAll, expect, test } from "vitest";
import { bearer, eventually, INVENTORY_AUTH, ORDER_SERVICE_AUTH_ENV } from "./system.ts";

// The real process, as operators run it, so its real log lines can be read.
let orderService: ChildProcess;
let inventory: InventoryServer;
let api: string;
const orderLines: Record<string, unknown>[] = [];
const inventoryLines: Record<string, unknown>[] = [];

const LAPTOP = "00000000-0000-4000-8000-000000000001";

beforeAll(async () => {
  const [inventoryDb, ordersDb, port] = await Promise.all([
    createTestDatabase("reqid_inventory"),
    createTestDatabase("reqid_orders"),
    freePort(),
  ]);
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) inventoryLines.push(JSON.parse(line));
      done();
    },
  });
  // Debug level: inventory logs successful calls there.
  inventory = await startInventoryServer({ databaseUrl: inventoryDb, seed: true, logger: pino({ level: "debug" }, sink), auth: INVENTORY_AUTH });

  orderService = spawn(process.execPath, [path.join(import.meta.dirname, "../src/main.ts")], {
    env: {
      ...process.env,
      ...ORDER_SERVICE_AUTH_ENV,
      SERVER_PORT: String(port),
      SERVER_HOST: "127.0.0.1",
      DATABASE_URL: ordersDb,
      INVENTORY_SERVICE_URL: inventory.url,
      LOG_LEVEL: "info",
      LOG_REQUESTS: "true",
      RECONCILE_INTERVAL_MS: "0",
      // No broker: the start-up line says so.
      NATS_URL: "",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let pending = "";
  orderService.stdout!.on("data", (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines.filter(Boolean)) orderLines.push(JSON.parse(line));
  });
  api = `http://127.0.0.1:${port}/api/v1`;
  await eventually(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    if (!res.ok) throw new Error(`not ready: ${res.status}`);
  }, 30_000);
});

afterAll(async () => {
  if (orderService && orderService.exitCode === null) {
    const exited = new Promise((resolve) => orderService.once("exit", resolve));
    orderService.kill("SIGTERM");
    await exited;
  }
  await inventory?.close();
});

const linesOf = (lines: Record<string, unknown>[], requestId: string) => lines.filter((l) => l.requestId === requestId);

test("the caller's X-Request-Id tags every log line of the request and reaches inventory", async () => {
  const res = await fetch(`${api}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": "checkout-42", authorization: await bearer("traced", []) },
    body: JSON.stringify({ user_id: "traced", items: [{ product_id: LAPTOP, quantity: 1 }] }),
  });

  expect(res.status).toBe(201);
  expect(res.headers.get("x-request-id")).toBe("checkout-42");
  await eventually(async () => {
    const ours = linesOf(orderLines, "checkout-42").map((l) => l.msg);
    expect(ours).toEqual(expect.arrayContaining(["incoming request", "request completed"]));
  });
  // Every line logged while serving a request names its request.
  const requestLines = orderLines.filter((l) => "req" in l || "res" in l || "err" in l);
  expect(requestLines.length).toBeGreaterThanOrEqual(2);
  expect(requestLines.every((l) => typeof l.requestId === "string")).toBe(true);
  const calls = linesOf(inventoryLines, "checkout-42");
  expect(calls).toEqual([expect.objectContaining({ procedure: "/inventory.v1.InventoryService/ReserveOrders", code: "OK" })]);
});

test("a generated request id is the one logged and passed to inventory", async () => {
  const res = await fetch(`${api}/products/${LAPTOP}`, { headers: { authorization: await bearer("traced", []) } });
  const requestId = res.headers.get("x-request-id") ?? "";

  expect(res.status).toBe(200);
  expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
  await eventually(async () => expect(linesOf(orderLines, requestId).map((l) => l.msg)).toContain("request completed"));
  expect(linesOf(inventoryLines, requestId)).toEqual([
    expect.objectContaining({ procedure: "/inventory.v1.InventoryService/GetProduct" }),
  ]);
});

test("says at start whether order events are published, and where to read them", () => {
  const line = orderLines.find((l) => typeof l.msg === "string" && l.msg.startsWith("events:"));
  expect(line).toMatchObject({
    level: 30,
    events: { publishing: false, retentionHours: 72 },
    msg: expect.stringContaining("publishing off (NATS_URL is not set)"),
  });
  expect(line!.msg).toContain("GET /api/v1/events");
});
