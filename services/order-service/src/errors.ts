import type { OrderStatus } from "./orders/status.ts";

/**
 * Every error the API can answer with, as a stable machine-readable code.
 * The HTTP status of each is decided once, in plugins/problems.ts.
 */
export type ErrorCode =
  | "validation_failed"
  | "invalid_json"
  | "unsupported_media_type"
  | "payload_too_large"
  | "bad_request"
  | "route_not_found"
  | "invalid_cursor"
  | "order_not_found"
  | "product_not_found"
  | "duplicate_product"
  | "unknown_product"
  | "insufficient_stock"
  | "order_rejected"
  | "status_conflict"
  | "inventory_unavailable"
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

export const orderNotFound = (orderId: string) =>
  new AppError("order_not_found", `Order ${orderId} does not exist.`, { order_id: orderId });

export const productNotFound = (productId: string) =>
  new AppError("product_not_found", `Product ${productId} does not exist.`, { product_id: productId });

export const invalidCursor = () =>
  new AppError("invalid_cursor", "The cursor is not one this API returned; start again without a cursor.");

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
