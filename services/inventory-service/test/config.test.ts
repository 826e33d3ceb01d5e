import { INVENTORY_API } from "@ecommerce/auth/audiences.ts";
import { DEV_ISSUER_URL } from "@ecommerce/auth/dev-issuer.ts";
import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_LIMITS, loadConfig } from "../src/config.ts";

function problemsOf(env: NodeJS.ProcessEnv): readonly string[] {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error("expected the configuration to be refused");
}

/** What production must say about tokens: whose, for whom, and where the keys are. */
const PRODUCTION_AUTH = {
  AUTH_ISSUER: "https://id.example.com",
  AUTH_AUDIENCE: "inventory-api",
  AUTH_JWKS_URL: "https://id.example.com/.well-known/jwks.json",
};

describe("configuration", () => {
  it("has development defaults and is frozen", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      serverPort: 9090,
      serverHost: "127.0.0.1",
      databaseUrl: undefined,
      runSeeder: true,
      reservationTtlSeconds: 900,
      expirySweepIntervalMs: 5000,
      dbPoolSize: 20,
      logLevel: "info",
      healthCheckIntervalMs: 2000,
      limits: DEFAULT_LIMITS,
    });
    expect(config.limits).toMatchObject({ maxCallMs: 30_000, shutdownTimeoutMs: 10_000, maxConcurrentStreams: 100 });
    expect(config.limits.contents.MAX_LINES).toBe(100);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.limits)).toBe(true);
  });

  it("reads every variable", () => {
    const config = loadConfig({
      NODE_ENV: "production",
      SERVER_PORT: "7000",
      SERVER_HOST: "0.0.0.0",
      DATABASE_URL: "postgres://inv@db:5432/inventory",
      RUN_SEEDER: "true",
      RESERVATION_TTL_SECONDS: "60",
      EXPIRY_SWEEP_INTERVAL_MS: "250",
      DB_POOL_SIZE: "5",
      LOG_LEVEL: "debug",
      SHUTDOWN_TIMEOUT_MS: "3000",
      HEALTH_CHECK_INTERVAL_MS: "500",
      GRPC_MAX_TIMEOUT_MS: "5000",
      MAX_REQUEST_BYTES: "2048",
      MAX_RESPONSE_BYTES: "65536",
      MAX_CONCURRENT_STREAMS: "8",
      MAX_SESSION_MEMORY_MB: "2",
      MAX_CONNECTIONS: "50",
      MAX_HEADER_LIST_BYTES: "4096",
      MAX_SEND_HEADER_BYTES: "32768",
      IDLE_TIMEOUT_MS: "1000",
      KEEPALIVE_INTERVAL_MS: "2000",
      KEEPALIVE_TIMEOUT_MS: "500",
      REQUEST_BODY_TIMEOUT_MS: "300",
      ...PRODUCTION_AUTH,
    });
    expect(config).toMatchObject({
      serverPort: 7000,
      serverHost: "0.0.0.0",
      databaseUrl: "postgres://inv@db:5432/inventory",
      runSeeder: true,
      reservationTtlSeconds: 60,
      expirySweepIntervalMs: 250,
      dbPoolSize: 5,
      logLevel: "debug",
      healthCheckIntervalMs: 500,
    });
    expect(config.limits).toMatchObject({
      maxRequestBytes: 2048,
      maxResponseBytes: 65536,
      maxConcurrentStreams: 8,
      maxSessionMemoryMb: 2,
      maxConnections: 50,
      maxHeaderListBytes: 4096,
      maxSendHeaderBytes: 32768,
      idleTimeoutMs: 1000,
      keepAliveIntervalMs: 2000,
      keepAliveTimeoutMs: 500,
      requestBodyTimeoutMs: 300,
      maxCallMs: 5000,
      shutdownTimeoutMs: 3000,
    });
  });

  it("requires DATABASE_URL and does not seed by default in production", () => {
    expect(problemsOf({ NODE_ENV: "production", ...PRODUCTION_AUTH })).toEqual(["DATABASE_URL is required when NODE_ENV=production"]);
    expect(loadConfig({ NODE_ENV: "production", DATABASE_URL: "postgresql://db/inventory", ...PRODUCTION_AUTH }).runSeeder).toBe(false);
  });

  it("names every malformed variable at once", () => {
    expect(
      problemsOf({
        SERVER_PORT: "http",
        DATABASE_URL: "mysql://db/x",
        RUN_SEEDER: "yes please",
        RESERVATION_TTL_SECONDS: "0",
        EXPIRY_SWEEP_INTERVAL_MS: "1.5",
        DB_POOL_SIZE: "-2",
        LOG_LEVEL: "loud",
        SHUTDOWN_TIMEOUT_MS: "soon",
        HEALTH_CHECK_INTERVAL_MS: "10",
        GRPC_MAX_TIMEOUT_MS: "0",
        MAX_REQUEST_BYTES: "1 MiB",
        MAX_CONCURRENT_STREAMS: "0",
        IDLE_TIMEOUT_MS: "3000000000",
      }),
    ).toEqual([
      'DATABASE_URL must be a postgres:// or postgresql:// URL, got "mysql://db/x"',
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
      'SERVER_PORT must be an integer from 0 to 65535, got "http"',
      'RUN_SEEDER must be true or false, got "yes please"',
      'RESERVATION_TTL_SECONDS must be an integer from 1 to 604800, got "0"',
      'EXPIRY_SWEEP_INTERVAL_MS must be an integer from 10 to 3600000, got "1.5"',
      'DB_POOL_SIZE must be an integer from 1 to 1000, got "-2"',
      'HEALTH_CHECK_INTERVAL_MS must be an integer from 50 to 600000, got "10"',
      'MAX_REQUEST_BYTES must be an integer from 1024 to 67108864, got "1 MiB"',
      'MAX_CONCURRENT_STREAMS must be an integer from 1 to 10000, got "0"',
      'IDLE_TIMEOUT_MS must be an integer from 100 to 2147483647, got "3000000000"',
      'GRPC_MAX_TIMEOUT_MS must be an integer from 100 to 3600000, got "0"',
      'SHUTDOWN_TIMEOUT_MS must be an integer from 0 to 600000, got "soon"',
    ]);
  });
});

describe("batching and metrics configuration", () => {
  it("bounds batches by default and serves metrics on 9464", () => {
    expect(loadConfig({})).toMatchObject({
      batching: { maxBatchSize: 100, maxInFlight: 4, maxQueued: 2000 },
      metricsPort: 9464,
    });
  });

  it("reads and checks its variables", () => {
    expect(
      loadConfig({ BATCH_MAX_SIZE: "50", BATCH_MAX_IN_FLIGHT: "2", BATCH_MAX_QUEUED: "0", METRICS_PORT: "0" }),
    ).toMatchObject({ batching: { maxBatchSize: 50, maxInFlight: 2, maxQueued: 0 }, metricsPort: 0 });
    expect(problemsOf({ BATCH_MAX_SIZE: "501", BATCH_MAX_IN_FLIGHT: "0", METRICS_PORT: "x" })).toEqual([
      'BATCH_MAX_SIZE must be an integer from 1 to 500, got "501"',
      'BATCH_MAX_IN_FLIGHT must be an integer from 1 to 64, got "0"',
      'METRICS_PORT must be an integer from 0 to 65535, got "x"',
    ]);
  });
});

describe("identity configuration", () => {
  it("trusts the development issuer by default, with reflection public and a budget per caller", () => {
    const config = loadConfig({});
    expect(config.auth).toEqual({
      issuer: DEV_ISSUER_URL,
      audience: INVENTORY_API,
      jwksUrl: `${DEV_ISSUER_URL}/.well-known/jwks.json`,
      clockToleranceSeconds: 30,
      reflectionPublic: true,
    });
    expect(config.callerBudget).toEqual({ perCaller: 1200, windowMs: 60_000 });
    expect(Object.isFrozen(config.auth)).toBe(true);
  });

  it("reads every variable", () => {
    const config = loadConfig({
      AUTH_ISSUER: "https://id.example.com",
      AUTH_AUDIENCE: "stock-api",
      AUTH_JWKS_FILE: "/etc/issuer/jwks.json",
      AUTH_CLOCK_TOLERANCE_SECONDS: "5",
      AUTH_REFLECTION_PUBLIC: "false",
      RATE_LIMIT_PER_CALLER: "0",
      RATE_LIMIT_WINDOW_MS: "1000",
    });
    expect(config.auth).toEqual({
      issuer: "https://id.example.com",
      audience: "stock-api",
      jwksFile: "/etc/issuer/jwks.json",
      clockToleranceSeconds: 5,
      reflectionPublic: false,
    });
    expect(config.callerBudget).toEqual({ perCaller: 0, windowMs: 1000 });
  });

  it("refuses to start in production without an issuer, an audience and a JWKS, and has no switch to turn tokens off", () => {
    expect(problemsOf({ NODE_ENV: "production", DATABASE_URL: "postgresql://db/inventory", AUTH_ENABLED: "false" })).toEqual([
      "AUTH_ISSUER is required when NODE_ENV=production",
      "AUTH_AUDIENCE is required when NODE_ENV=production",
      "AUTH_JWKS_URL or AUTH_JWKS_FILE is required when NODE_ENV=production",
    ]);
  });

  it("takes exactly one JWKS source, as a URL of HTTP(S)", () => {
    expect(problemsOf({ AUTH_JWKS_URL: "https://id.example.com/jwks", AUTH_JWKS_FILE: "/jwks.json" })).toEqual([
      "set only one of AUTH_JWKS_URL and AUTH_JWKS_FILE",
    ]);
    expect(problemsOf({ AUTH_JWKS_URL: "file:///jwks.json", AUTH_CLOCK_TOLERANCE_SECONDS: "-1", RATE_LIMIT_WINDOW_MS: "0" })).toEqual([
      'AUTH_JWKS_URL must be an http:// or https:// URL, got "file:///jwks.json"',
      'AUTH_CLOCK_TOLERANCE_SECONDS must be an integer from 0 to 600, got "-1"',
      'RATE_LIMIT_WINDOW_MS must be an integer from 1 to 86400000, got "0"',
    ]);
  });
});

describe("events configuration", () => {
  it("records events with publishing off by default, with the relay's defaults", () => {
    const config = loadConfig({});
    expect(config.events).toEqual({
      natsUrl: undefined,
      format: "protobuf",
      retentionHours: 72,
      batchMax: 500,
      pollIntervalMs: 1000,
      publishTimeoutMs: 5000,
      lagWarnSeconds: 60,
    });
    expect(Object.isFrozen(config.events)).toBe(true);
  });

  it("reads every variable", () => {
    expect(
      loadConfig({
        NATS_URL: "nats://nats:4222",
        EVENTS_FORMAT: "json",
        EVENTS_RETENTION_HOURS: "24",
        EVENTS_BATCH_MAX: "100",
        EVENTS_POLL_INTERVAL_MS: "250",
        EVENTS_PUBLISH_TIMEOUT_MS: "2000",
        EVENTS_LAG_WARN_SECONDS: "30",
      }).events,
    ).toEqual({
      natsUrl: "nats://nats:4222",
      format: "json",
      retentionHours: 24,
      batchMax: 100,
      pollIntervalMs: 250,
      publishTimeoutMs: 2000,
      lagWarnSeconds: 30,
    });
  });

  it("names bad event settings with the rest of the configuration", () => {
    expect(problemsOf({ SERVER_PORT: "x", NATS_URL: "localhost:4222", EVENTS_FORMAT: "xml", EVENTS_BATCH_MAX: "0" })).toEqual([
      'SERVER_PORT must be an integer from 0 to 65535, got "x"',
      'NATS_URL must be a URL such as nats://127.0.0.1:4222 (several servers separated by commas), got "localhost:4222"',
      'EVENTS_FORMAT must be one of protobuf, json, got "xml"',
      'EVENTS_BATCH_MAX must be an integer from 1 to 10000, got "0"',
    ]);
  });
});
