import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.ts";

function problemsOf(env: NodeJS.ProcessEnv): readonly string[] {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error("expected the configuration to be refused");
}

describe("configuration", () => {
  it("has development defaults and is frozen", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      serverPort: 9090,
      databaseUrl: undefined,
      runSeeder: true,
      reservationTtlSeconds: 900,
      expirySweepIntervalMs: 5000,
      dbPoolSize: 20,
      logLevel: "info",
      healthCheckIntervalMs: 2000,
      grpcMaxTimeoutMs: 30_000,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("reads every variable", () => {
    const config = loadConfig({
      NODE_ENV: "production",
      SERVER_PORT: "7000",
      DATABASE_URL: "postgres://inv@db:5432/inventory",
      RUN_SEEDER: "true",
      RESERVATION_TTL_SECONDS: "60",
      EXPIRY_SWEEP_INTERVAL_MS: "250",
      DB_POOL_SIZE: "5",
      LOG_LEVEL: "debug",
      SHUTDOWN_TIMEOUT_MS: "3000",
      HEALTH_CHECK_INTERVAL_MS: "500",
      GRPC_MAX_TIMEOUT_MS: "5000",
    });
    expect(config).toMatchObject({
      serverPort: 7000,
      databaseUrl: "postgres://inv@db:5432/inventory",
      runSeeder: true,
      reservationTtlSeconds: 60,
      expirySweepIntervalMs: 250,
      dbPoolSize: 5,
      logLevel: "debug",
      shutdownTimeoutMs: 3000,
      healthCheckIntervalMs: 500,
      grpcMaxTimeoutMs: 5000,
    });
  });

  it("requires DATABASE_URL and does not seed by default in production", () => {
    expect(problemsOf({ NODE_ENV: "production" })).toEqual(["DATABASE_URL is required when NODE_ENV=production"]);
    expect(loadConfig({ NODE_ENV: "production", DATABASE_URL: "postgresql://db/inventory" }).runSeeder).toBe(false);
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
      }),
    ).toEqual([
      'DATABASE_URL must be a postgres:// or postgresql:// URL, got "mysql://db/x"',
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
      'SERVER_PORT must be an integer from 0 to 65535, got "http"',
      'RUN_SEEDER must be true or false, got "yes please"',
      'RESERVATION_TTL_SECONDS must be an integer from 1 to 604800, got "0"',
      'EXPIRY_SWEEP_INTERVAL_MS must be an integer from 10 to 3600000, got "1.5"',
      'DB_POOL_SIZE must be an integer from 1 to 1000, got "-2"',
      'SHUTDOWN_TIMEOUT_MS must be an integer from 0 to 600000, got "soon"',
      'HEALTH_CHECK_INTERVAL_MS must be an integer from 50 to 600000, got "10"',
      'GRPC_MAX_TIMEOUT_MS must be an integer from 100 to 3600000, got "0"',
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
