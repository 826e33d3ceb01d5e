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

/** What production needs besides a database: whom to trust, and how to get a token for inventory. */
const PRODUCTION_AUTH = {
  AUTH_ISSUER: "https://id.example.com",
  AUTH_AUDIENCE: "orders-api",
  AUTH_JWKS_URL: "https://id.example.com/.well-known/jwks.json",
  INVENTORY_TOKEN_URL: "https://id.example.com/oauth/token",
  INVENTORY_CLIENT_ID: "order-service",
  INVENTORY_CLIENT_SECRET: "s3cret",
};

test("requires DATABASE_URL in production", () => {
  expect(() => loadConfig({ NODE_ENV: "production", ...PRODUCTION_AUTH })).toThrow(/DATABASE_URL is required/);
  expect(loadConfig({ NODE_ENV: "production", DATABASE_URL: "postgres://db/orders", ...PRODUCTION_AUTH }).databaseUrl).toBe(
    "postgres://db/orders",
  );
});

test("trusts the development issuer by default, outside production only", () => {
  expect(loadConfig({}).auth).toEqual({
    issuer: "http://127.0.0.1:9400",
    audience: "orders-api",
    jwksUrl: "http://127.0.0.1:9400/.well-known/jwks.json",
    clockToleranceSeconds: 30,
    keyRefetchCooldownSeconds: 30,
  });
  expect(loadConfig({}).inventoryToken).toMatchObject({
    kind: "client_credentials",
    tokenUrl: "http://127.0.0.1:9400/oauth/token",
    clientId: "order-service",
    scope: "inventory:read inventory:reserve",
    audience: "inventory-api",
  });
});

test("refuses to start in production without an issuer, its keys and a way to get an inventory token", () => {
  const attempt = () => loadConfig({ NODE_ENV: "production", DATABASE_URL: "postgres://db/orders" });
  expect(attempt).toThrow("AUTH_ISSUER is required when NODE_ENV=production");
  expect(attempt).toThrow("AUTH_AUDIENCE is required when NODE_ENV=production");
  expect(attempt).toThrow("AUTH_JWKS_URL or AUTH_JWKS_FILE is required when NODE_ENV=production");
  expect(attempt).toThrow(/INVENTORY_TOKEN_URL, INVENTORY_CLIENT_ID and INVENTORY_CLIENT_SECRET \(or INVENTORY_TOKEN\) are required/);
  const withFile = loadConfig({
    ...PRODUCTION_AUTH,
    NODE_ENV: "production",
    DATABASE_URL: "postgres://db/orders",
    AUTH_JWKS_URL: "",
    AUTH_JWKS_FILE: "/etc/orders/jwks.json",
    INVENTORY_TOKEN: "a-static-token",
    AUTH_CLOCK_TOLERANCE_SECONDS: "5",
  });
  expect(withFile.auth).toMatchObject({ jwksFile: "/etc/orders/jwks.json", clockToleranceSeconds: 5 });
  expect(withFile.auth).not.toHaveProperty("jwksUrl");
  expect(withFile.inventoryToken).toEqual({ kind: "static", token: "a-static-token" });
});

test("takes one source of keys, not two", () => {
  expect(() => loadConfig({ AUTH_JWKS_URL: "http://id.test/jwks.json", AUTH_JWKS_FILE: "/tmp/jwks.json" })).toThrow(
    "give one of AUTH_JWKS_URL and AUTH_JWKS_FILE, not both",
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

test("reads the events settings: publishing off without NATS_URL, and every bad one named with the rest", () => {
  expect(loadConfig({}).events).toEqual({
    natsUrl: undefined,
    format: "protobuf",
    retentionHours: 72,
    batchMax: 500,
    pollIntervalMs: 1000,
    publishTimeoutMs: 5000,
    lagWarnSeconds: 60,
  });
  expect(loadConfig({ NATS_URL: "nats://nats:4222", EVENTS_FORMAT: "json" }).events).toMatchObject({ natsUrl: "nats://nats:4222", format: "json" });
  const attempt = () => loadConfig({ NATS_URL: "http://nats:4222", EVENTS_FORMAT: "xml", EVENTS_BATCH_MAX: "0", SERVER_PORT: "x" });
  expect(attempt).toThrow('NATS_URL must be a URL such as nats://127.0.0.1:4222');
  expect(attempt).toThrow('EVENTS_FORMAT must be one of protobuf, json, got "xml"');
  expect(attempt).toThrow('EVENTS_BATCH_MAX must be an integer from 1 to 10000, got "0"');
  expect(attempt).toThrow("SERVER_PORT must be an integer");
});

test("the start-up line about events names the servers without their credentials", async () => {
  const { describeEvents } = await import("../src/orders/events.ts");
  const on = describeEvents(loadConfig({ NATS_URL: "nats://relay:s3cret@nats-a:4222, nats://nats-b:4222", EVENTS_FORMAT: "json" }).events);
  expect(on.message).toBe("events: publishing on, to NATS JetStream at nats://nats-a:4222, nats://nats-b:4222 (json)");
  expect(JSON.stringify(on)).not.toContain("s3cret");
  expect(on.fields.events).toMatchObject({ publishing: true, servers: ["nats://nats-a:4222", "nats://nats-b:4222"], format: "json" });
  expect(describeEvents(loadConfig({}).events).fields).toEqual({ events: { publishing: false, retentionHours: 72 } });
});
