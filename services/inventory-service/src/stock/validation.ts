import {
  AdjustmentReason,
  type AdjustStockRequest,
  type CheckStockRequest,
  type ConfirmReservationsRequest,
  type CreateProductRequest,
  type Line,
  type ListEventsRequest,
  type ListProductsRequest,
  type ReleaseStockRequest,
  type ReserveOrdersRequest,
  type ReserveStockRequest,
} from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { inventoryErrors, quoted, type FieldViolation } from "./errors.ts";
import { INVENTORY_EVENT_TYPES, isInventoryEventType, type InventoryEventType, type ListEventsInput } from "./events.ts";
import {
  CURRENCY_LENGTH,
  DEFAULT_EVENT_PAGE_SIZE,
  DEFAULT_PAGE_SIZE,
  MAX_ACTOR_LENGTH,
  MAX_CONFIRM_BATCH,
  MAX_DESCRIPTION_LENGTH,
  MAX_EVENT_PAGE_SIZE,
  MAX_EVENT_PAGE_TOKEN_LENGTH,
  MAX_LINE_QUANTITY,
  MAX_LINES,
  MAX_LOW_STOCK_THRESHOLD,
  MAX_NAME_LENGTH,
  MAX_NOTE_LENGTH,
  MAX_ON_HAND,
  MAX_PAGE_SIZE,
  MAX_PAGE_TOKEN_LENGTH,
  MAX_PRICE_MINOR,
  MAX_RESERVE_BATCH,
  MAX_RESERVE_BATCH_LINES,
  MAX_SKU_LENGTH,
  MAX_VIOLATIONS,
  UUID_LENGTH,
} from "./limits.ts";
import { decodePageToken } from "./page-token.ts";
import type { AdjustStockInput, CreateProductInput, ListProductsInput } from "./products.ts";
import type { LineInput, ReserveRequest } from "./reservations.ts";

// Every request is checked here before it reaches the domain. Each check
// adds {field, description} violations (the shape of google.rpc.BadRequest)
// and the request is refused with all of them at once. The work is bounded
// by the limits, not by the request: counts are checked before any item is
// looked at, lengths before any pattern runs, at most MAX_VIOLATIONS are
// listed, and a message quotes a value only through quoted().

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SKU = new RegExp(`^[A-Za-z0-9_-]{1,${MAX_SKU_LENGTH}}$`);
const CURRENCY = new RegExp(`^[A-Z]{${CURRENCY_LENGTH}}$`);

class Violations {
  readonly list: FieldViolation[] = [];
  /** Violations found beyond the MAX_VIOLATIONS listed. */
  omitted = 0;

  add(field: string, description: string): void {
    if (this.list.length < MAX_VIOLATIONS) this.list.push({ field, description });
    else this.omitted++;
  }

  get found(): boolean {
    return this.list.length > 0;
  }

  /** The UUID in lower case (as PostgreSQL prints it), or a violation. */
  uuid(field: string, value: string): string {
    if (value === "") this.add(field, "is required");
    else if (value.length !== UUID_LENGTH || !UUID.test(value)) this.add(field, `must be a UUID, got ${quoted(value)}`);
    return value.toLowerCase();
  }

  text(field: string, value: string, max: number, required: boolean): string {
    if (required && value.trim() === "") this.add(field, "is required");
    // A character is one or two UTF-16 units: the cheap length decides
    // unless it is within a factor of two of the bound.
    else if (value.length > 2 * max || (value.length > max && [...value].length > max)) {
      this.add(field, `must be at most ${max} characters, got ${value.length}`);
    }
    // PostgreSQL text cannot hold U+0000.
    else if (value.includes("\u0000")) this.add(field, "must not contain NUL characters");
    return value;
  }

  /** Throws the invalid_input error when any violation was found. */
  check(): void {
    if (this.found) throw inventoryErrors.invalidInput(this.list, this.omitted);
  }
}

/** A violation when `input` has more than `max` items; checked before any item is. */
function tooMany(v: Violations, field: string, input: readonly unknown[], max: number, noun: string): boolean {
  if (input.length <= max) return false;
  v.add(field, `must have at most ${max} ${noun}, got ${input.length}`);
  return true;
}

function lines(v: Violations, field: string, input: readonly Line[]): LineInput[] {
  if (input.length === 0) v.add(field, "must have at least one line");
  if (tooMany(v, field, input, MAX_LINES, "lines")) return [];
  const seen = new Map<string, number>();
  return input.map((line, i) => {
    const productId = v.uuid(`${field}[${i}].product_id`, line.productId);
    const first = seen.get(productId);
    if (first !== undefined && UUID.test(productId)) {
      v.add(`${field}[${i}].product_id`, `repeats the product of ${field}[${first}]; list each product once`);
    } else {
      seen.set(productId, i);
    }
    if (line.quantity < 1) v.add(`${field}[${i}].quantity`, "must be at least 1");
    else if (line.quantity > MAX_LINE_QUANTITY) v.add(`${field}[${i}].quantity`, `must be at most ${MAX_LINE_QUANTITY}`);
    return { productId, quantity: line.quantity };
  });
}

/** Validates a CheckStock request; returns its lines. */
export function parseCheckStock(req: CheckStockRequest): LineInput[] {
  const v = new Violations();
  const result = lines(v, "lines", req.lines);
  v.check();
  return result;
}

/** Validates a ReserveStock request. */
export function parseReserveStock(req: ReserveStockRequest): ReserveRequest {
  const v = new Violations();
  const result = { orderId: v.uuid("order_id", req.orderId), lines: lines(v, "lines", req.lines) };
  v.check();
  return result;
}

/**
 * Validates a ReserveOrders request. The request as a whole is refused for
 * too many orders or lines or an order id given twice, before any order is
 * looked at; then each order is checked as ReserveStock checks it, and a bad
 * one becomes that order's own refusal, leaving the others to go ahead.
 */
export function parseReserveOrders(req: ReserveOrdersRequest): PromiseSettledResult<ReserveRequest>[] {
  const v = new Violations();
  tooMany(v, "orders", req.orders, MAX_RESERVE_BATCH, "orders");
  const lineCount = req.orders.reduce((n, o) => n + o.lines.length, 0);
  if (lineCount > MAX_RESERVE_BATCH_LINES) {
    v.add("orders", `must have at most ${MAX_RESERVE_BATCH_LINES} lines in all, got ${lineCount}`);
  }
  v.check();
  const seen = new Map<string, number>();
  req.orders.forEach((o, i) => {
    const id = o.orderId.toLowerCase();
    const first = seen.get(id);
    if (first === undefined) seen.set(id, i);
    else v.add(`orders[${i}].order_id`, `repeats the order of orders[${first}]; list each order once`);
  });
  v.check();
  return req.orders.map((order) => {
    try {
      return { status: "fulfilled", value: parseReserveStock(order) };
    } catch (reason) {
      return { status: "rejected", reason };
    }
  });
}

/** Validates a ReleaseStock request. */
export function parseReleaseStock(req: ReleaseStockRequest): { orderId: string; reason: string } {
  const v = new Violations();
  const result = { orderId: v.uuid("order_id", req.orderId), reason: v.text("reason", req.reason, MAX_NOTE_LENGTH, false) };
  v.check();
  return result;
}

/** Validates the order id of CommitStock (field `order_id`). */
export function parseOrderId(orderId: string): string {
  const v = new Violations();
  const result = v.uuid("order_id", orderId);
  v.check();
  return result;
}

/** Validates the product id of GetProduct (field `product_id`). */
export function parseProductId(productId: string): string {
  const v = new Violations();
  const result = v.uuid("product_id", productId);
  v.check();
  return result;
}

/** Validates a ConfirmReservations request; returns its order ids without repeats. */
export function parseConfirmReservations(req: ConfirmReservationsRequest): string[] {
  const v = new Violations();
  if (tooMany(v, "order_ids", req.orderIds, MAX_CONFIRM_BATCH, "ids")) v.check();
  const ids = req.orderIds.map((id, i) => v.uuid(`order_ids[${i}]`, id));
  v.check();
  return [...new Set(ids)];
}

/** Validates a ListProducts request. */
export function parseListProducts(req: ListProductsRequest): ListProductsInput {
  const v = new Violations();
  const pageSize = req.pageSize === 0 ? DEFAULT_PAGE_SIZE : req.pageSize;
  if (pageSize < 1 || pageSize > MAX_PAGE_SIZE) v.add("page_size", `must be from 1 to ${MAX_PAGE_SIZE}, got ${req.pageSize}`);
  let afterSku: string | undefined;
  if (req.pageToken.length > MAX_PAGE_TOKEN_LENGTH) {
    v.add("page_token", `is not a page token returned by ListProducts (at most ${MAX_PAGE_TOKEN_LENGTH} characters, got ${req.pageToken.length})`);
  } else if (req.pageToken !== "") {
    afterSku = decodePageToken(req.pageToken);
    if (afterSku === undefined) v.add("page_token", "is not a page token returned by ListProducts");
  }
  v.check();
  return { pageSize, afterSku };
}

/** Validates a CreateProduct request. */
export function parseCreateProduct(req: CreateProductRequest): CreateProductInput {
  const v = new Violations();
  if (req.sku.length > MAX_SKU_LENGTH || !SKU.test(req.sku)) {
    v.add("sku", `must be 1 to ${MAX_SKU_LENGTH} letters, digits, '-' or '_', got ${quoted(req.sku)}`);
  }
  const name = v.text("name", req.name.trim(), MAX_NAME_LENGTH, true);
  const description = v.text("description", req.description, MAX_DESCRIPTION_LENGTH, false);
  if (req.priceMinor < 0n) v.add("price_minor", "must be zero or more");
  else if (req.priceMinor > MAX_PRICE_MINOR) v.add("price_minor", `must be at most ${MAX_PRICE_MINOR}`);
  if (req.currency.length !== CURRENCY_LENGTH || !CURRENCY.test(req.currency)) {
    v.add("currency", `must be an ISO 4217 code of three upper-case letters, got ${quoted(req.currency)}`);
  }
  if (req.initialStock < 0) v.add("initial_stock", "must be zero or more");
  else if (req.initialStock > MAX_ON_HAND) v.add("initial_stock", `must be at most ${MAX_ON_HAND}`);
  if (req.lowStockThreshold < 0 || req.lowStockThreshold > MAX_LOW_STOCK_THRESHOLD) {
    v.add("low_stock_threshold", `must be from 0 (no low-stock events) to ${MAX_LOW_STOCK_THRESHOLD}, got ${req.lowStockThreshold}`);
  }
  v.check();
  return {
    sku: req.sku,
    name,
    description,
    priceMinor: req.priceMinor,
    currency: req.currency,
    initialStock: req.initialStock,
    lowStockThreshold: req.lowStockThreshold,
  };
}

/**
 * Validates a ListEvents request. Whether a well-formed token is one the
 * listing returned is for the listing to say (see listStockEvents).
 */
export function parseListEvents(req: ListEventsRequest): ListEventsInput {
  const v = new Violations();
  const pageSize = req.pageSize === 0 ? DEFAULT_EVENT_PAGE_SIZE : req.pageSize;
  if (pageSize < 1 || pageSize > MAX_EVENT_PAGE_SIZE) v.add("page_size", `must be from 1 to ${MAX_EVENT_PAGE_SIZE}, got ${req.pageSize}`);
  if (req.pageToken.length > MAX_EVENT_PAGE_TOKEN_LENGTH) {
    v.add("page_token", `is not a page token returned by ListEvents (at most ${MAX_EVENT_PAGE_TOKEN_LENGTH} characters, got ${req.pageToken.length})`);
  }
  let type: InventoryEventType | undefined;
  if (isInventoryEventType(req.type)) type = req.type;
  else if (req.type !== "") v.add("type", `must be empty (every type) or one of ${INVENTORY_EVENT_TYPES.join(", ")}, got ${quoted(req.type)}`);
  v.check();
  return { pageSize, pageToken: req.pageToken === "" ? undefined : req.pageToken, type };
}

const ADJUSTMENT_KINDS = {
  [AdjustmentReason.RESTOCK]: "restock",
  [AdjustmentReason.WRITE_OFF]: "write_off",
  [AdjustmentReason.COUNT_CORRECTION]: "count_correction",
} as const;

/**
 * Validates an AdjustStock request made by `caller` (the token's subject),
 * whom the ledger records as its actor. The request's own `actor` may be
 * left empty or name the caller; naming anyone else is refused, so that
 * the ledger never says someone did what they did not.
 */
export function parseAdjustStock(req: AdjustStockRequest, caller: string): AdjustStockInput {
  const v = new Violations();
  const productId = v.uuid("product_id", req.productId);
  const reason = ADJUSTMENT_KINDS[req.reason as keyof typeof ADJUSTMENT_KINDS];
  if (reason === undefined) v.add("reason", "must be RESTOCK, WRITE_OFF or COUNT_CORRECTION");
  let change: AdjustStockInput["change"] | undefined;
  switch (req.change.case) {
    case undefined:
      v.add("change", "needs delta or set_on_hand");
      break;
    case "delta": {
      const delta = req.change.value;
      if (delta === 0) v.add("delta", "must not be zero");
      else if (reason === "restock" && delta < 0) v.add("delta", "must be positive for a restock");
      else if (reason === "write_off" && delta > 0) v.add("delta", "must be negative for a write-off");
      else change = { delta };
      break;
    }
    case "setOnHand": {
      const setOnHand = req.change.value;
      if (setOnHand < 0) v.add("set_on_hand", "must be zero or more");
      else change = { setOnHand };
      break;
    }
  }
  const note = v.text("note", req.note, MAX_NOTE_LENGTH, false);
  const claimed = v.text("actor", req.actor, MAX_ACTOR_LENGTH, false);
  if (claimed !== "" && claimed !== caller && claimed.length <= MAX_ACTOR_LENGTH) {
    v.add("actor", "must be empty or the caller's own subject: the ledger records the caller the token names");
  }
  // Whenever change or reason is missing a violation was recorded.
  if (v.found || change === undefined || reason === undefined) throw inventoryErrors.invalidInput(v.list, v.omitted);
  return { productId, change, reason, note, actor: caller };
}
