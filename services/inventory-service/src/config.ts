import { DEV_ISSUER_URL } from "@ecommerce/auth/dev-issuer.ts";
import { INVENTORY_API } from "@ecommerce/auth/audiences.ts";
import { readEventsConfig, type EventsConfig } from "@ecommerce/events/config.ts";
import { DEFAULT_CALLER_BUDGET, type CallerBudgetSettings } from "./interceptors/caller-budget.ts";
import { DEFAULT_BATCH_BOUNDS, type BatchBounds } from "./stock/coalescing.ts";
import * as contents from "./stock/limits.ts";

/**
 * Every bound on what one client can make the server hold or do. The
 * transport bounds are settings (one environment variable each, see the
 * README's Limits); the bounds on request contents are part of the
 * contract (proto comments) and fixed, and are included here so that a
 * reader finds every bound in one place.
 */
export interface Limits {
  /**
   * Largest request message in bytes, before and after decompression
   * (connect-es readMaxBytes, which is also zlib's maxOutputLength).
   */
  readonly maxRequestBytes: number;
  /** Largest response message in bytes (connect-es writeMaxBytes). */
  readonly maxResponseBytes: number;
  /** Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
  /** Memory nghttp2 may buffer for one connection, in MB; beyond it new streams are refused. */
  readonly maxSessionMemoryMb: number;
  /** Open TCP connections; further ones are closed as they arrive. */
  readonly maxConnections: number;
  /** Largest request header block (SETTINGS_MAX_HEADER_LIST_SIZE), in bytes. */
  readonly maxHeaderListBytes: number;
  /** Largest header or trailer block the server sends, in bytes. */
  readonly maxSendHeaderBytes: number;
  /** A connection without an open stream for this long is closed (GOAWAY). */
  readonly idleTimeoutMs: number;
  /** How often each connection is pinged, to find peers that vanished. */
  readonly keepAliveIntervalMs: number;
  /** A connection whose ping is not answered within this is destroyed. */
  readonly keepAliveTimeoutMs: number;
  /**
   * How long a request's body may take to arrive (for streaming requests:
   * the longest wait for the next bytes); a client deadline that is shorter wins.
   */
  readonly requestBodyTimeoutMs: number;
  /** The longest a unary call may run, whatever deadline its client set. */
  readonly maxCallMs: number;
  /** How long a shutdown waits for in-flight calls before cutting them off. */
  readonly shutdownTimeoutMs: number;
  /** Bounds on request contents: lines, quantities, string lengths (src/stock/limits.ts). */
  readonly contents: typeof contents;
}

/** The transport bounds when nothing is configured; the README says why each is what it is. */
export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxRequestBytes: 1024 * 1024,
  maxResponseBytes: 4 * 1024 * 1024,
  maxConcurrentStreams: 100,
  maxSessionMemoryMb: 10,
  maxConnections: 1000,
  maxHeaderListBytes: 16 * 1024,
  maxSendHeaderBytes: 64 * 1024,
  idleTimeoutMs: 120_000,
  keepAliveIntervalMs: 60_000,
  keepAliveTimeoutMs: 20_000,
  requestBodyTimeoutMs: 10_000,
  maxCallMs: 30_000,
  shutdownTimeoutMs: 10_000,
  contents,
});

/**
 * Whom the gRPC edge trusts to say who a caller is: the issuer of bearer
 * tokens, the audience they must name, and where the issuer's public keys
 * are (exactly one of a URL and a file). Authentication has no off switch;
 * these say only whose tokens are good.
 */
export interface AuthSettings {
  readonly issuer: string;
  /** The `aud` every token must name (default `inventory-api`). */
  readonly audience: string;
  readonly jwksUrl?: string;
  readonly jwksFile?: string;
  /** Skew allowed between the issuer's clock and ours for `exp` and `nbf` (default 30 s). */
  readonly clockToleranceSeconds?: number;
  /** Whether server reflection answers without a token (default true): it describes the API, no data. */
  readonly reflectionPublic?: boolean;
  /** Least time between key reloads caused by unknown key ids (default 30 s): how soon a rotated-in key is used. */
  readonly keyRefetchCooldownSeconds?: number;
}

/** The development issuer of `make dev`, trusted when no other is configured (outside production). */
export const DEV_ISSUER_AUTH: AuthSettings = Object.freeze({
  issuer: DEV_ISSUER_URL,
  audience: INVENTORY_API,
  jwksUrl: `${DEV_ISSUER_URL}/.well-known/jwks.json`,
});

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
  /** How often the health service checks that the database answers. */
  readonly healthCheckIntervalMs: number;
  /** Every bound on sizes, counts, connections and time. */
  readonly limits: Limits;

  // Batching and metrics.
  /** Bounds of the batches ReserveStock, ReleaseStock and CommitStock calls are served in. */
  readonly batching: BatchBounds;
  /** Plain HTTP port serving GET /metrics (Prometheus) on serverHost; 0: none. */
  readonly metricsPort: number;

  // Identity.
  /** The token issuer, audience and keys the gRPC edge verifies callers with. */
  readonly auth: AuthSettings;
  /** Calls each caller (token subject) may make per window; perCaller 0: no budget. */
  readonly callerBudget: CallerBudgetSettings;

  // Events.
  /** The broker and the relay's settings (NATS_URL, EVENTS_*); events are recorded whatever they say. */
  readonly events: EventsConfig;
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
  } else if (!isUrlOf(databaseUrl, ["postgres:", "postgresql:"])) {
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
    // Loopback unless told otherwise: a development server is not for the network.
    serverHost: env.SERVER_HOST?.trim() || "127.0.0.1",
    databaseUrl,
    runSeeder: boolean("RUN_SEEDER", !production),
    reservationTtlSeconds: integer("RESERVATION_TTL_SECONDS", 900, 1, 7 * 24 * 3600),
    expirySweepIntervalMs: integer("EXPIRY_SWEEP_INTERVAL_MS", 5000, 10, 3_600_000),
    dbPoolSize: integer("DB_POOL_SIZE", 20, 1, 1000),
    logLevel,
    healthCheckIntervalMs: integer("HEALTH_CHECK_INTERVAL_MS", 2000, 50, 600_000),
    limits: loadLimits(integer),

    // Batching and metrics.
    batching: Object.freeze({
      maxBatchSize: integer("BATCH_MAX_SIZE", DEFAULT_BATCH_BOUNDS.maxBatchSize, 1, contents.MAX_RESERVE_BATCH),
      maxInFlight: integer("BATCH_MAX_IN_FLIGHT", DEFAULT_BATCH_BOUNDS.maxInFlight, 1, 64),
      maxQueued: integer("BATCH_MAX_QUEUED", DEFAULT_BATCH_BOUNDS.maxQueued, 0, 1_000_000),
    }),
    metricsPort: integer("METRICS_PORT", 9464, 0, 65535),

    // Identity.
    auth: loadAuth(env, production, problems, integer, boolean),
    callerBudget: Object.freeze({
      perCaller: integer("RATE_LIMIT_PER_CALLER", DEFAULT_CALLER_BUDGET.perCaller, 0, 100_000_000),
      windowMs: integer("RATE_LIMIT_WINDOW_MS", DEFAULT_CALLER_BUDGET.windowMs, 1, 86_400_000),
    }),

    // Events.
    events: readEventsConfig(env, integer, problems),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** Reads one integer setting: its variable, default and inclusive range. */
type ReadInteger = (name: string, fallback: number, min: number, max: number) => number;

// Timers in Node.js hold at most 2^31 - 1 ms; every time bound stays below.
const MAX_TIMER_MS = 2_147_483_647;

function loadLimits(integer: ReadInteger): Limits {
  const d = DEFAULT_LIMITS;
  return Object.freeze({
    maxRequestBytes: integer("MAX_REQUEST_BYTES", d.maxRequestBytes, 1024, 64 * 1024 * 1024),
    maxResponseBytes: integer("MAX_RESPONSE_BYTES", d.maxResponseBytes, 64 * 1024, 64 * 1024 * 1024),
    maxConcurrentStreams: integer("MAX_CONCURRENT_STREAMS", d.maxConcurrentStreams, 1, 10_000),
    maxSessionMemoryMb: integer("MAX_SESSION_MEMORY_MB", d.maxSessionMemoryMb, 1, 1024),
    maxConnections: integer("MAX_CONNECTIONS", d.maxConnections, 1, 100_000),
    maxHeaderListBytes: integer("MAX_HEADER_LIST_BYTES", d.maxHeaderListBytes, 1024, 1024 * 1024),
    maxSendHeaderBytes: integer("MAX_SEND_HEADER_BYTES", d.maxSendHeaderBytes, 16 * 1024, 1024 * 1024),
    idleTimeoutMs: integer("IDLE_TIMEOUT_MS", d.idleTimeoutMs, 100, MAX_TIMER_MS),
    keepAliveIntervalMs: integer("KEEPALIVE_INTERVAL_MS", d.keepAliveIntervalMs, 100, MAX_TIMER_MS),
    keepAliveTimeoutMs: integer("KEEPALIVE_TIMEOUT_MS", d.keepAliveTimeoutMs, 100, MAX_TIMER_MS),
    requestBodyTimeoutMs: integer("REQUEST_BODY_TIMEOUT_MS", d.requestBodyTimeoutMs, 100, MAX_TIMER_MS),
    maxCallMs: integer("GRPC_MAX_TIMEOUT_MS", d.maxCallMs, 100, 3_600_000),
    shutdownTimeoutMs: integer("SHUTDOWN_TIMEOUT_MS", d.shutdownTimeoutMs, 0, 600_000),
    contents,
  });
}

/**
 * The token settings. In development they default to the development
 * issuer (`make dev`: DEV_ISSUER_URL and its JWKS endpoint); in production
 * the issuer, the audience and one JWKS source must be set, so that a
 * service is never deployed trusting the development keys by omission.
 */
function loadAuth(
  env: NodeJS.ProcessEnv,
  production: boolean,
  problems: string[],
  integer: ReadInteger,
  boolean: (name: string, fallback: boolean) => boolean,
): AuthSettings {
  const read = (name: string) => env[name]?.trim() || undefined;
  const issuer = read("AUTH_ISSUER");
  const audience = read("AUTH_AUDIENCE");
  let jwksUrl = read("AUTH_JWKS_URL");
  const jwksFile = read("AUTH_JWKS_FILE");
  if (production) {
    for (const [name, value] of [["AUTH_ISSUER", issuer], ["AUTH_AUDIENCE", audience]] as const) {
      if (value === undefined) problems.push(`${name} is required when NODE_ENV=production`);
    }
    if (jwksUrl === undefined && jwksFile === undefined) problems.push("AUTH_JWKS_URL or AUTH_JWKS_FILE is required when NODE_ENV=production");
  }
  if (jwksUrl !== undefined && jwksFile !== undefined) problems.push("set only one of AUTH_JWKS_URL and AUTH_JWKS_FILE");
  if (jwksUrl !== undefined && !isUrlOf(jwksUrl, ["http:", "https:"])) {
    problems.push(`AUTH_JWKS_URL must be an http:// or https:// URL, got "${jwksUrl}"`);
    jwksUrl = undefined;
  }
  return Object.freeze({
    issuer: issuer ?? DEV_ISSUER_AUTH.issuer,
    audience: audience ?? DEV_ISSUER_AUTH.audience,
    ...(jwksFile !== undefined ? { jwksFile } : { jwksUrl: jwksUrl ?? DEV_ISSUER_AUTH.jwksUrl }),
    clockToleranceSeconds: integer("AUTH_CLOCK_TOLERANCE_SECONDS", 30, 0, 600),
    reflectionPublic: boolean("AUTH_REFLECTION_PUBLIC", true),
  });
}

/** Whether `value` is a URL of one of `protocols` (such as "https:"). */
function isUrlOf(value: string, protocols: readonly string[]): boolean {
  try {
    return protocols.includes(new URL(value).protocol);
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
