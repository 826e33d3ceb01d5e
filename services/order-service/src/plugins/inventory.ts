import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { TokenSource } from "@ecommerce/auth/client-credentials.ts";
import { Health } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import type { Status } from "@ecommerce/gen/google/rpc/status_pb.ts";
import { InsufficientStockSchema, InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import type { FastifyBaseLogger } from "fastify";
import fp from "fastify-plugin";
import type { UnavailableItem } from "../errors.ts";
import { forwardRequestId } from "../request-context.ts";
import { retryUnavailable } from "./inventory-retry.ts";

/** Typed client of the inventory gRPC API. */
export type InventoryClient = Client<typeof InventoryService>;
/** Typed client of the inventory's grpc.health.v1 service. */
export type HealthClient = Client<typeof Health>;

declare module "fastify" {
  interface FastifyInstance {
    inventory: InventoryClient;
    inventoryHealth: HealthClient;
    /** The deadline of every inventory call. */
    inventoryTimeoutMs: number;
  }
}

export interface InventoryPluginOptions {
  /** Base URL of the inventory server, such as http://127.0.0.1:9090. */
  url: string;
  /** Deadline of every call. */
  timeoutMs: number;
  /** Largest message accepted from inventory; a larger one fails the call (RESOURCE_EXHAUSTED). */
  readMaxBytes: number;
  /** The order service's own bearer token for inventory. */
  token: TokenSource;
}

/**
 * Decorates the app with inventory clients over the gRPC protocol. One
 * HTTP/2 session serves every call (gRPC multiplexes), each call carries the
 * configured deadline, idempotent calls are retried within it while
 * inventory is unavailable, and the session closes with the app.
 */
export const inventoryPlugin = fp<InventoryPluginOptions>(
  async (app, { url, timeoutMs, readMaxBytes, token }) => {
    // PINGs detect a dead peer on an otherwise quiet connection.
    const sessionManager = new Http2SessionManager(url, { pingIntervalMs: 30_000, pingTimeoutMs: 5_000 });
    const transport = createGrpcTransport({
      baseUrl: url,
      sessionManager,
      defaultTimeoutMs: timeoutMs,
      readMaxBytes,
      // Inventory is a neighbour on a fast network: gzip would cost both
      // sides more CPU (a batch's answer is well over the 1 KiB at which
      // Connect starts compressing) than it saves on the wire.
      acceptCompression: [],
      // The token is added to each attempt, so a retry carries a fresh one.
      interceptors: [forwardRequestId, retryUnavailable(), bearerToken(token, app.log)],
    });
    app.decorate("inventory", createClient(InventoryService, transport));
    app.decorate("inventoryTimeoutMs", timeoutMs);
    app.decorate("inventoryHealth", createClient(Health, transport));
    app.addHook("onClose", async () => sessionManager.abort());
  },
  { name: "inventory" },
);

/**
 * Connect interceptor that sends the order service's own token with every
 * call. Failing to get one, or inventory refusing it, is this service's
 * misconfiguration (wrong client secret, scopes, issuer), never the
 * customer's: it is logged as an error, and the call fails as UNAVAILABLE
 * so the customer gets a 503 and pending orders wait for the fix.
 */
function bearerToken(source: TokenSource, log: FastifyBaseLogger): Interceptor {
  return (next) => async (req) => {
    let token: string;
    try {
      token = await source.token();
    } catch (error) {
      log.error({ err: error, method: req.method.name }, "cannot get the order service's token for inventory: check INVENTORY_TOKEN_URL, INVENTORY_CLIENT_ID and INVENTORY_CLIENT_SECRET");
      throw new ConnectError("the order service has no token for inventory", Code.Unavailable, undefined, undefined, error);
    }
    req.header.set("authorization", `Bearer ${token}`);
    try {
      return await next(req);
    } catch (error) {
      const e = ConnectError.from(error);
      if (e.code === Code.Unauthenticated || e.code === Code.PermissionDenied) {
        log.error({ err: e, method: req.method.name, code: Code[e.code] }, "inventory refused the order service's token: check its client, scopes and issuer settings");
      }
      throw error;
    }
  };
}

/** What went wrong in a call to inventory, in the terms the use cases act on. */
export type InventoryFailure =
  /** ReserveStock found too little stock; every short line is listed. */
  | { kind: "insufficient_stock"; items: UnavailableItem[] }
  | { kind: "not_found"; message: string }
  | { kind: "invalid_argument"; message: string }
  | { kind: "failed_precondition"; message: string }
  /** Inventory could not be reached or did not answer in time: try again later. */
  | { kind: "unavailable"; message: string }
  /** Anything else is a defect on one side or the other. */
  | { kind: "unexpected"; error: ConnectError };

// Transport failures and server faults: the order can be re-driven later.
// Inventory refusing the order service's own credentials is one too (a
// misconfiguration, logged by the interceptor): once it is fixed, the
// pending orders go through.
const TRANSIENT = new Set([
  Code.Unauthenticated,
  Code.PermissionDenied,
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
  Code.Canceled,
  Code.Unknown,
  Code.Internal,
]);

/**
 * Classifies an error thrown by an inventory call. This is the one place
 * gRPC status codes and error details are read; the short lines of
 * FAILED_PRECONDITION come from the typed InsufficientStock detail.
 */
export function classifyInventoryError(error: unknown): InventoryFailure {
  const e = ConnectError.from(error);
  if (TRANSIENT.has(e.code)) return { kind: "unavailable", message: e.rawMessage };
  switch (e.code) {
    case Code.NotFound:
      return { kind: "not_found", message: e.rawMessage };
    case Code.InvalidArgument:
      return { kind: "invalid_argument", message: e.rawMessage };
    case Code.FailedPrecondition: {
      const lines = e.findDetails(InsufficientStockSchema).flatMap((d) => d.lines);
      if (lines.length === 0) return { kind: "failed_precondition", message: e.rawMessage };
      return {
        kind: "insufficient_stock",
        items: lines.map((l) => ({ product_id: l.productId, requested: l.requested, available: l.available })),
      };
    }
    default:
      return { kind: "unexpected", error: e };
  }
}

/**
 * The error a google.rpc.Status stands for: what a call failing with that
 * status would have thrown, details included. ReserveOrders answers each
 * refused order with the status ReserveStock would have failed with, so the
 * order is classified by {@link classifyInventoryError} like any failed call.
 */
export function statusError(status: Status): ConnectError {
  const code = status.code in Code ? (status.code as Code) : Code.Unknown;
  const error = new ConnectError(status.message, code);
  for (const detail of status.details) {
    error.details.push({ type: detail.typeUrl.slice(detail.typeUrl.lastIndexOf("/") + 1), value: detail.value });
  }
  return error;
}
