import { INPUT_LIMITS } from "./config.ts";
import type { OrderStatus } from "./orders/status.ts";

/**
 * Every error the API can answer with, as a stable machine-readable code.
 * The HTTP status, title and meaning of each are decided once, in
 * plugins/problems.ts, which also documents them (OpenAPI and README).
 */
export type ErrorCode =
  | "validation_failed"
  | "malformed_json"
  | "unsupported_media_type"
  | "body_too_large"
  | "bad_request"
  | "route_not_found"
  | "method_not_allowed"
  | "request_timeout"
  | "headers_too_large"
  | "invalid_cursor"
  | "unauthorized"
  | "forbidden"
  | "order_not_found"
  | "product_not_found"
  | "duplicate_product"
  | "unknown_product"
  | "insufficient_stock"
  | "order_rejected"
  | "status_conflict"
  | "idempotency_key_in_flight"
  | "idempotency_key_reused"
  | "rate_limited"
  | "inventory_unavailable"
  | "auth_unavailable"
  | "overloaded"
  | "database_unavailable"
  | "not_ready"
  | "internal_error";

/** A line that asks for more than inventory has. */
export interface UnavailableItem {
  product_id: string;
  requested: number;
  available: number;
}

/** One reason a request failed validation, pointing at the field. */
export interface FieldError {
  /** JSON pointer into the request part, such as `/body/items/0/quantity`. */
  field: string;
  message: string;
}

/** Extension members of a problem document (RFC 9457 section 3.2). */
export interface ProblemFields {
  order_id?: string;
  product_id?: string;
  /** The order's current status, when that is why the request failed. */
  order_status?: OrderStatus;
  unavailable_items?: UnavailableItem[];
  errors?: FieldError[];
}

/** An expected failure with a code, a sentence for people and optional fields. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly fields: ProblemFields;

  constructor(code: ErrorCode, detail: string, fields: ProblemFields = {}) {
    super(detail);
    this.name = "AppError";
    this.code = code;
    this.fields = fields;
  }
}

/**
 * Request input as an error message may quote it: at most
 * INPUT_LIMITS.quotedChars characters, the cut marked with an ellipsis, so
 * an answer never grows with what a client sent.
 */
export function quote(input: string, maxChars: number = INPUT_LIMITS.quotedChars): string {
  return input.length <= maxChars ? input : `${input.slice(0, maxChars)}…`;
}

export const orderNotFound = (orderId: string) =>
  new AppError("order_not_found", `Order ${orderId} does not exist.`, { order_id: orderId });

export const productNotFound = (productId: string) =>
  new AppError("product_not_found", `Product ${productId} does not exist.`, { product_id: productId });

export const invalidCursor = () =>
  new AppError("invalid_cursor", "The cursor is not one this API returned; start again without a cursor.");

export const invalidDateRange = () =>
  new AppError("validation_failed", "created_after must not be later than created_before.", {
    errors: [{ field: "/querystring/created_after", message: "must not be later than created_before" }],
  });

export const routeNotFound = (method: string, path: string) =>
  new AppError("route_not_found", `There is no route ${quote(method)} ${quote(path)}. The API is described at /openapi.json.`);

export const methodNotAllowed = (method: string, path: string, allowed: readonly string[]) =>
  new AppError(
    "method_not_allowed",
    `${quote(path)} does not take ${quote(method)}; it takes ${allowed.join(", ")} (see the Allow header).`,
  );

export const unsupportedMediaType = (contentType: string | undefined) =>
  new AppError("unsupported_media_type", `Send the body as application/json${contentType ? `, not ${quote(contentType)}` : ""}.`);

export const unsupportedEncoding = (encoding: string) =>
  new AppError(
    "unsupported_media_type",
    `Bodies are not decompressed: send the JSON without Content-Encoding (got ${quote(encoding)}).`,
  );

export const requestTimeout = () =>
  new AppError("request_timeout", "The request did not arrive in time; the connection is closed.");

export const headersTooLarge = () =>
  new AppError(
    "headers_too_large",
    "The request line and headers are larger than this server accepts; the connection is closed.",
  );

export const malformedRequest = () =>
  new AppError(
    "bad_request",
    "The request is not valid HTTP/1.1 (its method, Content-Length or Transfer-Encoding, or its framing); the connection is closed.",
  );

export const rateLimited = (retryAfterSeconds: number) =>
  new AppError(
    "rate_limited",
    `Too many requests from this client; try again in ${retryAfterSeconds} second${retryAfterSeconds === 1 ? "" : "s"}.`,
  );

/** No usable bearer token: the detail says what was wrong with it, never what it held. */
export const unauthorized = (detail: string) => new AppError("unauthorized", detail);

/** The caller is known but may not do this. */
export const forbidden = (detail: string) => new AppError("forbidden", detail);

export const authUnavailable = () =>
  new AppError("auth_unavailable", "Tokens cannot be checked right now (the issuer's signing keys are unavailable); try again shortly.");

export const duplicateProduct = (productId: string) =>
  new AppError(
    "duplicate_product",
    `Product ${productId} appears more than once in items; list each product once with its total quantity.`,
    { errors: [{ field: "/body/items", message: `duplicate product_id ${productId}` }] },
  );

export const unknownProduct = (orderId: string, detail: string) =>
  new AppError("unknown_product", `The order was rejected: ${detail}`, { order_id: orderId });

export const insufficientStock = (orderId: string, items: UnavailableItem[]) =>
  new AppError(
    "insufficient_stock",
    `The order was rejected: not enough stock for ${items.length === 1 ? "one item" : `${items.length} items`}.`,
    { order_id: orderId, unavailable_items: items },
  );

export const orderRejected = (orderId: string, reason: string) =>
  new AppError("order_rejected", `The order was rejected: ${reason}`, { order_id: orderId });

export const statusConflict = (orderId: string, status: OrderStatus, action: string) =>
  new AppError("status_conflict", `Order ${orderId} is ${status} and cannot be ${action}.`, {
    order_id: orderId,
    order_status: status,
  });

export const inventoryUnavailable = (orderId?: string) =>
  new AppError(
    "inventory_unavailable",
    orderId
      ? "Inventory did not answer in time. The order is pending and will be completed in the background; check it later with GET /api/v1/orders/{id}."
      : "Inventory did not answer in time; try again shortly.",
    orderId ? { order_id: orderId } : {},
  );

export const idempotencyKeyInFlight = (key: string) =>
  new AppError(
    "idempotency_key_in_flight",
    `A request with Idempotency-Key "${key}" is still being processed; retry after Retry-After seconds to get its response.`,
  );

export const idempotencyKeyReused = (key: string) =>
  new AppError(
    "idempotency_key_reused",
    `Idempotency-Key "${key}" was already used for a different request to this endpoint; use a new key for a new request.`,
  );

export const overloaded = (orderId?: string) =>
  new AppError(
    "overloaded",
    orderId
      ? "The order service has more orders waiting than it takes at once. The order is pending and will be completed in the background; check it later with GET /api/v1/orders/{id}."
      : "The order service has more orders waiting than it takes at once; nothing was stored. Retry after Retry-After seconds.",
    orderId ? { order_id: orderId } : {},
  );
