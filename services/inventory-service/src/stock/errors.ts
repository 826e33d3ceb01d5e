import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { AuthError, KeySetUnavailableError } from "@ecommerce/auth/errors.ts";
import { QueueFullError } from "@ecommerce/batching/batcher.ts";
import { BadRequest_FieldViolationSchema, BadRequestSchema } from "@ecommerce/gen/google/rpc/error_details_pb.ts";
import { StatusSchema, type Status } from "@ecommerce/gen/google/rpc/status_pb.ts";
import { InsufficientStockSchema, ShortLineSchema } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import type { ReservationStatus } from "../db/database.ts";
import { MAX_QUOTED_LENGTH } from "./limits.ts";

/**
 * A client's value as an error message quotes it: in double quotes, cut
 * after MAX_QUOTED_LENGTH characters with the full length named, so that
 * no message (nor the log line or trailer that carries it) grows with the
 * input. Every message that quotes input goes through here.
 */
export function quoted(value: string): string {
  if (value.length <= MAX_QUOTED_LENGTH) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, MAX_QUOTED_LENGTH))}... (${value.length} characters)`;
}

/** One bad request field, shaped like google.rpc.BadRequest.FieldViolation. */
export interface FieldViolation {
  /** Path of the field in the request, such as `lines[2].quantity`. */
  field: string;
  /** What is wrong with it, such as `must be at least 1`. */
  description: string;
}

/** A line that asks for more units than are available. */
export interface ShortLine {
  productId: string;
  requested: number;
  available: number;
}

/** Every way an inventory operation can be refused. */
export type InventoryErrorCode =
  | "invalid_input"
  | "product_not_found"
  | "sku_taken"
  | "insufficient_stock"
  | "stock_below_reserved"
  | "stock_limit_exceeded"
  | "reservation_not_found"
  | "reservation_conflict"
  | "reservation_closed"
  | "caller_budget_exceeded";

/** A refusal the caller can act on; turned into a gRPC status by {@link toConnectError}. */
export class InventoryError extends Error {
  readonly code: InventoryErrorCode;
  /** The bad fields of an `invalid_input` error. */
  readonly violations: readonly FieldViolation[];
  /** The short lines of an `insufficient_stock` error. */
  readonly shortLines: readonly ShortLine[];

  constructor(
    code: InventoryErrorCode,
    message: string,
    extra: { violations?: readonly FieldViolation[]; shortLines?: readonly ShortLine[] } = {},
  ) {
    super(message);
    this.name = "InventoryError";
    this.code = code;
    this.violations = extra.violations ?? [];
    this.shortLines = extra.shortLines ?? [];
  }
}

/** Factories for every {@link InventoryError}, so messages are worded in one place. */
export const inventoryErrors = {
  /** `omitted` counts the violations beyond those listed (see MAX_VIOLATIONS). */
  invalidInput: (violations: readonly FieldViolation[], omitted = 0) =>
    new InventoryError(
      "invalid_input",
      violations.map((v) => `${v.field} ${v.description}`).join("; ") + (omitted > 0 ? `; and ${omitted} more` : ""),
      { violations },
    ),
  productNotFound: (productIds: readonly string[]) =>
    new InventoryError(
      "product_not_found",
      productIds.length === 1 ? `product ${productIds[0]} not found` : `products ${productIds.join(", ")} not found`,
    ),
  skuTaken: (sku: string) => new InventoryError("sku_taken", `a product with sku ${sku} already exists`),
  insufficientStock: (shortLines: readonly ShortLine[]) =>
    new InventoryError(
      "insufficient_stock",
      `insufficient stock: ${shortLines
        .map((l) => `product ${l.productId} requested ${l.requested}, available ${l.available}`)
        .join("; ")}`,
      { shortLines },
    ),
  stockBelowReserved: (productId: string, onHand: number, reserved: number) =>
    new InventoryError(
      "stock_below_reserved",
      `on hand of product ${productId} cannot become ${onHand}: ${reserved} units are reserved`,
    ),
  stockLimitExceeded: (productId: string, onHand: number, limit: number) =>
    new InventoryError(
      "stock_limit_exceeded",
      `on hand of product ${productId} cannot become ${onHand}: the most a product can hold is ${limit}`,
    ),
  reservationNotFound: (orderId: string) =>
    new InventoryError("reservation_not_found", `no reservation for order ${orderId}`),
  reservationConflict: (orderId: string) =>
    new InventoryError(
      "reservation_conflict",
      `order ${orderId} already has a reservation with different lines`,
    ),
  reservationClosed: (orderId: string, status: ReservationStatus) =>
    new InventoryError("reservation_closed", `the reservation for order ${orderId} is ${status}`),
  callerBudgetExceeded: (perCaller: number, windowMs: number) =>
    new InventoryError(
      "caller_budget_exceeded",
      `this caller has used its budget of ${perCaller} calls per ${windowMs} ms; slow down and retry later`,
    ),
};

const GRPC_CODES: Record<InventoryErrorCode, Code> = {
  invalid_input: Code.InvalidArgument,
  product_not_found: Code.NotFound,
  sku_taken: Code.AlreadyExists,
  insufficient_stock: Code.FailedPrecondition,
  stock_below_reserved: Code.FailedPrecondition,
  stock_limit_exceeded: Code.FailedPrecondition,
  reservation_not_found: Code.NotFound,
  reservation_conflict: Code.AlreadyExists,
  reservation_closed: Code.FailedPrecondition,
  caller_budget_exceeded: Code.ResourceExhausted,
};

// Errors of node-postgres and PostgreSQL that mean the database cannot be
// reached right now (refused, reset, shutting down, out of connections):
// the caller may retry, so they are UNAVAILABLE rather than INTERNAL.
const UNAVAILABLE_DB_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EPIPE",
  "57P01",
  "57P02",
  "57P03",
  "53300",
  "08000",
  "08001",
  "08003",
  "08006",
]);

function isDatabaseUnavailable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && UNAVAILABLE_DB_CODES.has(code)) return true;
  return /Connection terminated|timeout exceeded when trying to connect|not queryable|Client was closed/.test(e.message);
}

/** The typed error details a refusal carries, for clients to read with `findDetails`. */
function detailsOf(e: InventoryError) {
  switch (e.code) {
    case "invalid_input":
      return [
        {
          desc: BadRequestSchema,
          value: create(BadRequestSchema, {
            fieldViolations: e.violations.map((v) => create(BadRequest_FieldViolationSchema, v)),
          }),
        },
      ];
    case "insufficient_stock":
      return [
        {
          desc: InsufficientStockSchema,
          value: create(InsufficientStockSchema, { lines: e.shortLines.map((l) => create(ShortLineSchema, l)) }),
        },
      ];
    default:
      return [];
  }
}

/**
 * The one mapping from errors to gRPC statuses. Inventory errors keep their
 * message and typed details (google.rpc.BadRequest for bad fields,
 * inventory.v1.InsufficientStock for short stock); a refused credential is
 * UNAUTHENTICATED, a missing scope PERMISSION_DENIED, both with the
 * verifier's message (which never holds the token); keys that cannot be
 * loaded are UNAVAILABLE, without saying where they live; a call the client gave
 * up on is CANCELED; database outages become UNAVAILABLE; anything else is
 * INTERNAL without internals in the message. The original error stays
 * available as `cause` for logging; it never goes over the wire.
 */
function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof InventoryError) return new ConnectError(e.message, GRPC_CODES[e.code], undefined, detailsOf(e), e);
  if (e instanceof AuthError) {
    const code = e.code === "insufficient_scope" ? Code.PermissionDenied : Code.Unauthenticated;
    return new ConnectError(e.message, code, undefined, undefined, e);
  }
  if (e instanceof KeySetUnavailableError) {
    return new ConnectError("the token signing keys cannot be loaded; retry later", Code.Unavailable, undefined, undefined, e);
  }
  // A batched step whose queue is at its bound: busy now, retry later.
  if (e instanceof QueueFullError) {
    return new ConnectError("inventory is overloaded; retry later", Code.ResourceExhausted, undefined, undefined, e);
  }
  if (e instanceof Error && e.name === "AbortError") return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, e);
  // lock_timeout, set from the call's deadline, ended the wait for a lock.
  if ((e as { code?: unknown }).code === "55P03") {
    return new ConnectError("the call's deadline passed while it waited for stock locks", Code.DeadlineExceeded, undefined, undefined, e);
  }
  const sqlState = (e as { code?: unknown }).code;
  // Deadlock or serialization failure: nothing was applied; a retry can succeed.
  if (sqlState === "40P01" || sqlState === "40001") {
    return new ConnectError("the call conflicted with a concurrent change; retry it", Code.Aborted, undefined, undefined, e);
  }
  // A data exception: a value in the request that PostgreSQL cannot store or
  // compare (a NUL character, an impossible date). The request is at fault.
  if (typeof sqlState === "string" && sqlState.startsWith("22")) {
    return new ConnectError("a value in the request cannot be stored or compared", Code.InvalidArgument, undefined, undefined, e);
  }
  if (isDatabaseUnavailable(e)) return new ConnectError("the inventory database is unavailable", Code.Unavailable, undefined, undefined, e);
  return new ConnectError("internal error", Code.Internal, undefined, undefined, e);
}

/**
 * The google.rpc.Status a call failing with `e` would end with, for
 * answers that carry one outcome per item (ReserveOrders): the same code,
 * message and details as {@link toConnectError} gives the call.
 */
export function toStatus(e: unknown): Status {
  const error = toConnectError(e);
  return create(StatusSchema, {
    code: error.code,
    message: error.rawMessage,
    details: error.details.map((d) =>
      "desc" in d ? anyPack(d.desc, create(d.desc, d.value)) : { typeUrl: `type.googleapis.com/${d.type}`, value: d.value },
    ),
  });
}

/**
 * Interceptor that turns whatever a unary handler throws into its gRPC
 * status (see {@link toConnectError}).
 */
export const errorInterceptor: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (e) {
    throw toConnectError(e);
  }
};

/**
 * Request gate (connect-es runs it for every call, before it reads the
 * request) that makes a request body which is not valid protobuf
 * INVALID_ARGUMENT in every protocol. connect-es reports it as INTERNAL
 * ("parse binary: ...", HTTP 500 over the Connect protocol), and decodes a
 * unary request before any interceptor runs, so errorInterceptor never
 * sees it. Every protocol hands the error to the call's signal before it
 * writes the status, so it is corrected there, in place. (JSON that does
 * not parse is INVALID_ARGUMENT already.)
 */
export function undecodableRequestGate(context: HandlerContext): void {
  const { signal } = context;
  signal.addEventListener(
    "abort",
    () => {
      const e: unknown = signal.reason;
      if (e instanceof ConnectError && e.code === Code.Internal && e.rawMessage.startsWith("parse binary:")) {
        Object.assign(e, { code: Code.InvalidArgument, message: `[invalid_argument] ${e.rawMessage}` });
      }
    },
    { once: true },
  );
}
