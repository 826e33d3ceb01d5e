import { DEFAULT_BATCH_BOUNDS, type BatchBounds } from "./stock/coalescing.ts";
import { MAX_RESERVE_BATCH } from "./stock/limits.ts";

/** Settings of the inventory service, read once from the environment at start. */
export interface Config {
  readonly nodeEnv: string;
  /** TCP port of the gRPC / Connect server. */
  readonly serverPort: number;
  /** Interface the server listens on. */
  readonly serverHost: string;
  /**
   * PostgreSQL connection URL; undefined in development, where an embedded
   * PostgreSQL is started instead.
   */
  readonly databaseUrl: string | undefined;
  /** Load the sample products at start. */
  readonly runSeeder: boolean;
  /** How long an unconfirmed reservation holds its stock. */
  readonly reservationTtlSeconds: number;
  /** How often the expiry sweeper looks for reservations past their TTL. */
  readonly expirySweepIntervalMs: number;
  /** Connections in the PostgreSQL pool. */
  readonly dbPoolSize: number;
  readonly logLevel: LogLevel;
  /** How long a shutdown waits for in-flight calls before cutting them off. */
  readonly shutdownTimeoutMs: number;
  /** How often the health service checks that the database answers. */
  readonly healthCheckIntervalMs: number;
  /** The longest a unary call may run, whatever deadline its client set. */
  readonly grpcMaxTimeoutMs: number;

  // Batching and metrics.
  /** Bounds of the batches ReserveStock, ReleaseStock and CommitStock calls are served in. */
  readonly batching: BatchBounds;
  /** Plain HTTP port serving GET /metrics (Prometheus) on serverHost; 0: none. */
  readonly metricsPort: number;
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Raised when the environment holds missing or malformed settings; lists every problem. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * Parses and validates the service settings from `env`. Throws a
 * {@link ConfigError} naming every bad variable; the result is frozen.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const nodeEnv = env.NODE_ENV?.trim() || "development";
  const production = nodeEnv === "production";

  function integer(name: string, fallback: number, min: number, max: number): number {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  }

  function boolean(name: string, fallback: boolean): boolean {
    const raw = env[name]?.trim().toLowerCase();
    if (raw === undefined || raw === "") return fallback;
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0") return false;
    problems.push(`${name} must be true or false, got "${env[name]}"`);
    return fallback;
  }

  let databaseUrl = env.DATABASE_URL?.trim() || undefined;
  if (databaseUrl === undefined) {
    if (production) problems.push("DATABASE_URL is required when NODE_ENV=production");
  } else if (!isPostgresUrl(databaseUrl)) {
    problems.push(`DATABASE_URL must be a postgres:// or postgresql:// URL, got "${databaseUrl}"`);
    databaseUrl = undefined;
  }

  let logLevel: LogLevel = "info";
  const rawLevel = env.LOG_LEVEL?.trim().toLowerCase();
  if (rawLevel) {
    if ((LOG_LEVELS as readonly string[]).includes(rawLevel)) logLevel = rawLevel as LogLevel;
    else problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, got "${env.LOG_LEVEL}"`);
  }

  const config: Config = {
    nodeEnv,
    serverPort: integer("SERVER_PORT", 9090, 0, 65535),
    serverHost: env.SERVER_HOST?.trim() || "0.0.0.0",
    databaseUrl,
    runSeeder: boolean("RUN_SEEDER", !production),
    reservationTtlSeconds: integer("RESERVATION_TTL_SECONDS", 900, 1, 7 * 24 * 3600),
    expirySweepIntervalMs: integer("EXPIRY_SWEEP_INTERVAL_MS", 5000, 10, 3_600_000),
    dbPoolSize: integer("DB_POOL_SIZE", 20, 1, 1000),
    logLevel,
    shutdownTimeoutMs: integer("SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
    healthCheckIntervalMs: integer("HEALTH_CHECK_INTERVAL_MS", 2000, 50, 600_000),
    grpcMaxTimeoutMs: integer("GRPC_MAX_TIMEOUT_MS", 30_000, 100, 3_600_000),

    // Batching and metrics.
    batching: Object.freeze({
      maxBatchSize: integer("BATCH_MAX_SIZE", DEFAULT_BATCH_BOUNDS.maxBatchSize, 1, MAX_RESERVE_BATCH),
      maxInFlight: integer("BATCH_MAX_IN_FLIGHT", DEFAULT_BATCH_BOUNDS.maxInFlight, 1, 64),
      maxQueued: integer("BATCH_MAX_QUEUED", DEFAULT_BATCH_BOUNDS.maxQueued, 0, 1_000_000),
    }),
    metricsPort: integer("METRICS_PORT", 9464, 0, 65535),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

function isPostgresUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "postgres:" || url.protocol === "postgresql:";
  } catch {
    return false;
  }
}

/** {@link loadConfig} for entry points: prints the problems and exits with status 1. */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`inventory-service: ${e.message}\n`);
    process.exit(1);
  }
}
