import { expect, test } from "vitest";
import { loadConfig } from "../src/config.ts";

test("has working defaults for development", () => {
  const config = loadConfig({});
  expect(config).toMatchObject({
    port: 8080,
    host: "127.0.0.1",
    databaseUrl: undefined,
    inventoryUrl: "http://127.0.0.1:9090",
    inventoryTimeoutMs: 2000,
    logRequests: true,
  });
  expect(Object.isFrozen(config)).toBe(true);
});

test("names every malformed variable in one message", () => {
  const attempt = () =>
    loadConfig({
      SERVER_PORT: "eighty",
      INVENTORY_SERVICE_URL: "localhost:9090",
      INVENTORY_TIMEOUT_MS: "0",
      LOG_LEVEL: "loud",
      LOG_REQUESTS: "maybe",
    });
  expect(attempt).toThrow('SERVER_PORT must be an integer from 0 to 65535, got "eighty"');
  expect(attempt).toThrow('INVENTORY_SERVICE_URL must be a URL starting with http:// or https://, got "localhost:9090"');
  expect(attempt).toThrow("INVENTORY_TIMEOUT_MS must be an integer from 1 to 600000");
  expect(attempt).toThrow("LOG_LEVEL must be one of");
  expect(attempt).toThrow('LOG_REQUESTS must be true or false, got "maybe"');
});

test("requires DATABASE_URL in production", () => {
  expect(() => loadConfig({ NODE_ENV: "production" })).toThrow(/DATABASE_URL is required/);
  expect(loadConfig({ NODE_ENV: "production", DATABASE_URL: "postgres://db/orders" }).databaseUrl).toBe(
    "postgres://db/orders",
  );
});

test("configures the reconciler, and refuses to give up on pending orders before their grace period ends", () => {
  expect(loadConfig({})).toMatchObject({ reconcileIntervalMs: 1000, pendingGraceMs: 5000, pendingGiveUpMs: 60_000 });
  expect(loadConfig({ RECONCILE_INTERVAL_MS: "0" }).reconcileIntervalMs).toBe(0);
  expect(() => loadConfig({ PENDING_GRACE_MS: "10000", PENDING_GIVE_UP_MS: "5000" })).toThrow(
    "PENDING_GIVE_UP_MS (5000) must be greater than PENDING_GRACE_MS (10000)",
  );
});

test("has one limits section, with defaults and the contract's bounds", () => {
  const { limits } = loadConfig({});
  expect(limits).toMatchObject({
    bodyBytes: 65_536,
    headerBytes: 16_384,
    maxConnections: 512,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 72_000,
    shutdownGraceMs: 10_000,
    inventoryReadMaxBytes: 4 * 1024 * 1024,
    itemsPerOrder: 100,
    userIdChars: 128,
    idempotencyKeyChars: 255,
  });
  expect(Object.isFrozen(limits)).toBe(true);
  expect(loadConfig({ SERVER_HOST: "0.0.0.0", MAX_CONNECTIONS: "10" })).toMatchObject({ host: "0.0.0.0", limits: { maxConnections: 10 } });
});

test("names every malformed limit, and refuses a head deadline past the request's", () => {
  const attempt = () =>
    loadConfig({ MAX_HEADER_BYTES: "lots", SHUTDOWN_GRACE_MS: "-1", HEADERS_TIMEOUT_MS: "5000", REQUEST_TIMEOUT_MS: "1000" });
  expect(attempt).toThrow('MAX_HEADER_BYTES must be an integer from 1024 to 1048576, got "lots"');
  expect(attempt).toThrow('SHUTDOWN_GRACE_MS must be an integer from 0 to 600000, got "-1"');
  expect(attempt).toThrow("HEADERS_TIMEOUT_MS (5000) must not be greater than REQUEST_TIMEOUT_MS (1000)");
});
