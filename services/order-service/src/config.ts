/**
 * Configuration from the environment, parsed and validated once at start.
 * Every missing or malformed variable is reported in one message so an
 * operator can fix them all at once.
 */
import { INVENTORY_API, ORDERS_API } from "@ecommerce/auth/audiences.ts";
import { DEV_ISSUER_URL } from "@ecommerce/auth/dev-issuer.ts";
import { INVENTORY_READ, INVENTORY_RESERVE } from "@ecommerce/auth/scopes.ts";
import { readEventsConfig, type EventsConfig } from "@ecommerce/events/config.ts";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  /** Port of the REST API. */
  readonly port: number;
  /** Interface to listen on: loopback unless SERVER_HOST opens it up. */
  readonly host: string;
  /** Orders database; undefined in development means "use the embedded PostgreSQL". */
  readonly databaseUrl: string | undefined;
  readonly dbPoolSize: number;
  /** Base URL of the inventory gRPC server (plaintext HTTP/2). */
  readonly inventoryUrl: string;
  /** Deadline of every inventory call. */
  readonly inventoryTimeoutMs: number;
  /** Period of the reconciler (orders/reconciler.ts); 0 turns it off. */
  readonly reconcileIntervalMs: number;
  /** The reconciler leaves a pending order younger than this to its request. */
  readonly pendingGraceMs: number;
  /** The reconciler rejects an order pending for longer than this. */
  readonly pendingGiveUpMs: number;
  readonly logLevel: LogLevel;
  /** One info line per request (Fastify's request logging). */
  readonly logRequests: boolean;
  /** Every bound of the service's edges (see README, "Limits"). */
  readonly limits: Limits;
  // REST conventions and protective defaults (see README, "REST conventions").
  /** Origins allowed to call the API from a browser; empty turns CORS off. */
  readonly corsOrigins: readonly string[];
  /** Requests per caller (token subject, else IP address) per window; 0 turns rate limiting off. */
  readonly rateLimitMax: number;
  readonly rateLimitWindowMs: number;
  /** Take the client address from X-Forwarded-For (only behind a proxy that sets it). */
  readonly trustProxy: boolean;
  /** Natural batching of order placement (see README, "Batching"). */
  readonly batching: BatchingConfig;
  /** How callers' bearer tokens are verified (see README, "Authentication"). */
  readonly auth: AuthConfig;
  /** How the order service gets its own token for inventory. */
  readonly inventoryToken: InventoryTokenConfig;
  /** Publishing the recorded order events (see README, "Events"); NATS_URL unset: recorded and listable, not published. */
  readonly events: EventsConfig;
}

/** The issuer whose tokens the API accepts. There is no setting that turns authentication off. */
export interface AuthConfig {
  /** AUTH_ISSUER: the only `iss` accepted. */
  readonly issuer: string;
  /** AUTH_AUDIENCE: the `aud` a token must name (orders-api). */
  readonly audience: string;
  /** AUTH_JWKS_URL: where the issuer publishes its keys; or jwksFile. */
  readonly jwksUrl?: string;
  /** AUTH_JWKS_FILE: a JWK Set on disk; or jwksUrl. */
  readonly jwksFile?: string;
  /** AUTH_CLOCK_TOLERANCE_SECONDS: skew allowed on exp and nbf. */
  readonly clockToleranceSeconds: number;
  /** AUTH_KEY_REFETCH_COOLDOWN_SECONDS: least time between reloads of the keys for an unknown key id (a rotation is picked up within it). */
  readonly keyRefetchCooldownSeconds: number;
}

/**
 * The order service's credentials for inventory: a client-credentials grant
 * (cached, refreshed before expiry), or a fixed token for development and
 * tests (INVENTORY_TOKEN).
 */
export type InventoryTokenConfig =
  | { readonly kind: "static"; readonly token: string }
  | {
      readonly kind: "client_credentials";
      readonly tokenUrl: string;
      readonly clientId: string;
      readonly clientSecret: string;
      readonly scope: string;
      readonly audience: string;
    };

/**
 * The order service's client at the development issuer (tools/dev.ts
 * registers it): the default credentials outside production. Not a secret:
 * the development issuer is never trusted anywhere else.
 */
export const DEV_INVENTORY_CLIENT = Object.freeze({
  clientId: "order-service",
  clientSecret: "order-service-development-secret",
  scopes: [INVENTORY_READ, INVENTORY_RESERVE],
  audience: INVENTORY_API,
});

/**
 * Bounds of the placement pipeline (orders/steps.ts): a queue per
 * step (store, reserve, settle), each drained whole by a batcher.
 */
export interface BatchingConfig {
  /** Most orders in one batch: ORDER_BATCH_MAX (at most 500, ReserveOrders' bound). */
  readonly maxOrders: number;
  /** Batches of a database step (store, settle, transition, acknowledge) running at once: ORDER_BATCHES_IN_FLIGHT. */
  readonly inFlight: number;
  /** ReserveOrders calls running at once: ORDER_RESERVE_IN_FLIGHT (1 decides stock in arrival order). */
  readonly reserveInFlight: number;
  /** Orders waiting for a step beyond which the step answers 503 at once: ORDER_QUEUE_MAX. */
  readonly maxQueued: number;
}

/**
 * Bounds that are part of the API contract: the request schemas carry them,
 * so they appear in the OpenAPI document and a client can rely on them.
 * Changing one changes the contract, so they are not read from the
 * environment.
 */
export const INPUT_LIMITS = Object.freeze({
  /** Lines of one order. */
  itemsPerOrder: 100,
  /** Units of one line. */
  quantityPerLine: 1000,
  /** Characters of `user_id`, in a body or a query filter. */
  userIdChars: 128,
  /** Characters of an Idempotency-Key. */
  idempotencyKeyChars: 255,
  /** Characters of a pagination cursor (ours are under 100). */
  cursorChars: 512,
  /** Characters of a caller's X-Request-Id; a longer one is replaced. */
  requestIdChars: 128,
  /** Characters of an RFC 3339 date-time filter. */
  dateTimeChars: 64,
  /** Characters of request input an error message quotes. */
  quotedChars: 64,
  /** Field errors listed in one problem document; the detail counts the rest. */
  fieldErrors: 20,
});

/** The bounds of the service's edges: one section, read and checked with the rest of the configuration. */
export interface Limits extends Readonly<typeof INPUT_LIMITS> {
  /** Largest request body (BODY_LIMIT_BYTES); larger is 413. Bodies are never decompressed, so this bounds the decoded size too. */
  readonly bodyBytes: number;
  /** Largest request head, request line and headers (Node's maxHeaderSize); larger is 431. */
  readonly headerBytes: number;
  /** Open client connections; the server refuses more at accept. */
  readonly maxConnections: number;
  /** Time a client has to send the request head; then 408. */
  readonly headersTimeoutMs: number;
  /** Time a client has to send the whole request, body included; then 408. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** On SIGTERM, requests in flight get this long; then every connection is closed and the process exits. */
  readonly shutdownGraceMs: number;
  /** Largest message read from inventory (the gRPC client's readMaxBytes). */
  readonly inventoryReadMaxBytes: number;
}

type Env = Record<string, string | undefined>;

/** Parses the environment into a frozen Config, or throws one error naming every bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];

  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  };

  const url = (name: string, fallback: string | undefined, protocols: string[]): string | undefined => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return fallback;
    try {
      const parsed = new URL(raw);
      if (!protocols.includes(parsed.protocol)) throw new Error("protocol");
      return raw;
    } catch {
      problems.push(`${name} must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}, got "${raw}"`);
      return fallback;
    }
  };

  const boolean = (name: string, fallback: boolean): boolean => {
    const raw = env[name]?.trim().toLowerCase();
    if (raw === undefined || raw === "") return fallback;
    if (["true", "1", "yes"].includes(raw)) return true;
    if (["false", "0", "no"].includes(raw)) return false;
    problems.push(`${name} must be true or false, got "${raw}"`);
    return fallback;
  };

  const databaseUrl = url("DATABASE_URL", undefined, ["postgres:", "postgresql:"]);
  // Only development falls back to the embedded PostgreSQL.
  if (env.NODE_ENV === "production" && !env.DATABASE_URL?.trim()) {
    problems.push("DATABASE_URL is required when NODE_ENV=production");
  }

  const logLevel = (env.LOG_LEVEL?.trim() || "info") as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);

  const core = {
    port: integer("SERVER_PORT", 8080, 0, 65535),
    // Loopback unless asked: a container or a host that should be reachable
    // from outside says so (compose.yaml and the Dockerfile set 0.0.0.0).
    host: env.SERVER_HOST?.trim() || "127.0.0.1",
    databaseUrl,
    dbPoolSize: integer("DB_POOL_SIZE", 20, 1, 1000),
    inventoryUrl: url("INVENTORY_SERVICE_URL", "http://127.0.0.1:9090", ["http:", "https:"]) ?? "",
    inventoryTimeoutMs: integer("INVENTORY_TIMEOUT_MS", 2000, 1, 600_000),
    reconcileIntervalMs: integer("RECONCILE_INTERVAL_MS", 1000, 0, 3_600_000),
    pendingGraceMs: integer("PENDING_GRACE_MS", 5000, 1, 3_600_000),
    pendingGiveUpMs: integer("PENDING_GIVE_UP_MS", 60_000, 1, 86_400_000),
    logLevel,
    logRequests: boolean("LOG_REQUESTS", true),
  };

  const limits: Limits = Object.freeze({
    ...INPUT_LIMITS,
    bodyBytes: integer("BODY_LIMIT_BYTES", 64 * 1024, 1024, 100 * 1024 * 1024),
    headerBytes: integer("MAX_HEADER_BYTES", 16 * 1024, 1024, 1024 * 1024),
    maxConnections: integer("MAX_CONNECTIONS", 512, 1, 1_000_000),
    headersTimeoutMs: integer("HEADERS_TIMEOUT_MS", 10_000, 100, 600_000),
    requestTimeoutMs: integer("REQUEST_TIMEOUT_MS", 30_000, 100, 600_000),
    keepAliveTimeoutMs: integer("KEEP_ALIVE_TIMEOUT_MS", 72_000, 100, 600_000),
    shutdownGraceMs: integer("SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
    inventoryReadMaxBytes: integer("INVENTORY_READ_MAX_BYTES", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024),
  });
  // The head is part of the request: its deadline cannot be the later one.
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    problems.push(
      `HEADERS_TIMEOUT_MS (${limits.headersTimeoutMs}) must not be greater than REQUEST_TIMEOUT_MS (${limits.requestTimeoutMs})`,
    );
  }

  const corsOrigins = (env.CORS_ORIGINS ?? "")
    .split(",")
    .map((origin) => origin.trim())
    .filter((origin) => origin !== "");
  for (const origin of corsOrigins) {
    if (origin !== "*" && !isOrigin(origin)) {
      problems.push(`CORS_ORIGINS must be a comma-separated list of origins such as https://shop.example.com, or *; got "${origin}"`);
    }
  }

  const production = env.NODE_ENV === "production";
  const text = (name: string, fallback: string | undefined): string | undefined => env[name]?.trim() || fallback;
  // Outside production everything defaults to the development issuer that
  // `make dev` runs; in production each setting must be given.
  const dev = (value: string) => (production ? undefined : value);
  const issuer = text("AUTH_ISSUER", dev(DEV_ISSUER_URL));
  const audience = text("AUTH_AUDIENCE", ORDERS_API)!;
  const jwksFile = text("AUTH_JWKS_FILE", undefined);
  const jwksUrl = url("AUTH_JWKS_URL", jwksFile ? undefined : dev(`${DEV_ISSUER_URL}/.well-known/jwks.json`), ["http:", "https:"]);
  if (issuer === undefined) problems.push("AUTH_ISSUER is required when NODE_ENV=production");
  if (production && !env.AUTH_AUDIENCE?.trim()) problems.push("AUTH_AUDIENCE is required when NODE_ENV=production");
  if (env.AUTH_JWKS_URL?.trim() && jwksFile) problems.push("give one of AUTH_JWKS_URL and AUTH_JWKS_FILE, not both");
  else if (jwksUrl === undefined && jwksFile === undefined) problems.push("AUTH_JWKS_URL or AUTH_JWKS_FILE is required when NODE_ENV=production");
  const auth: AuthConfig = Object.freeze({
    issuer: issuer ?? "",
    audience,
    ...(jwksFile ? { jwksFile } : { jwksUrl: jwksUrl ?? "" }),
    clockToleranceSeconds: integer("AUTH_CLOCK_TOLERANCE_SECONDS", 30, 0, 300),
    keyRefetchCooldownSeconds: integer("AUTH_KEY_REFETCH_COOLDOWN_SECONDS", 30, 0, 3600),
  });

  const staticToken = text("INVENTORY_TOKEN", undefined);
  const tokenUrl = url("INVENTORY_TOKEN_URL", dev(`${DEV_ISSUER_URL}/oauth/token`), ["http:", "https:"]);
  const clientId = text("INVENTORY_CLIENT_ID", dev(DEV_INVENTORY_CLIENT.clientId));
  const clientSecret = text("INVENTORY_CLIENT_SECRET", dev(DEV_INVENTORY_CLIENT.clientSecret));
  let inventoryToken: InventoryTokenConfig;
  if (staticToken !== undefined) {
    inventoryToken = { kind: "static", token: staticToken };
  } else {
    if (tokenUrl === undefined || clientId === undefined || clientSecret === undefined) {
      problems.push(
        "INVENTORY_TOKEN_URL, INVENTORY_CLIENT_ID and INVENTORY_CLIENT_SECRET (or INVENTORY_TOKEN) are required when NODE_ENV=production",
      );
    }
    inventoryToken = {
      kind: "client_credentials",
      tokenUrl: tokenUrl ?? "",
      clientId: clientId ?? "",
      clientSecret: clientSecret ?? "",
      scope: text("INVENTORY_TOKEN_SCOPE", DEV_INVENTORY_CLIENT.scopes.join(" "))!,
      audience: text("INVENTORY_TOKEN_AUDIENCE", INVENTORY_API)!,
    };
  }

  const config: Config = {
    ...core,
    auth,
    inventoryToken: Object.freeze(inventoryToken),
    limits,
    corsOrigins,
    rateLimitMax: integer("RATE_LIMIT_MAX", 1000, 0, 1_000_000_000),
    rateLimitWindowMs: integer("RATE_LIMIT_WINDOW_MS", 60_000, 1, 86_400_000),
    trustProxy: boolean("TRUST_PROXY", false),
    batching: Object.freeze({
      maxOrders: integer("ORDER_BATCH_MAX", 500, 1, 500),
      inFlight: integer("ORDER_BATCHES_IN_FLIGHT", 1, 1, 64),
      reserveInFlight: integer("ORDER_RESERVE_IN_FLIGHT", 1, 1, 64),
      maxQueued: integer("ORDER_QUEUE_MAX", 2000, 0, 1_000_000),
    }),
    events: readEventsConfig(env, integer, problems),
  };

  // Without the reconciler, confirmed orders' reservations are never made
  // permanent and expire in inventory: only tests may turn it off.
  if (config.reconcileIntervalMs === 0 && env.NODE_ENV === "production") {
    problems.push("RECONCILE_INTERVAL_MS=0 (no reconciler) is not allowed when NODE_ENV=production");
  }
  if (config.pendingGiveUpMs <= config.pendingGraceMs) {
    problems.push(
      `PENDING_GIVE_UP_MS (${config.pendingGiveUpMs}) must be greater than PENDING_GRACE_MS (${config.pendingGraceMs})`,
    );
  }

  if (problems.length > 0) {
    throw new Error(`Invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
  return Object.freeze(config);
}

/** Whether `value` is exactly an HTTP(S) origin: scheme, host and optional port, nothing else. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === value;
  } catch {
    return false;
  }
}
