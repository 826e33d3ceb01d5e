import { create, fromJson, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { anyPack, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { EVENT_TYPES } from "@ecommerce/events/catalogue.ts";
import type { RecordedEvent } from "@ecommerce/events/outbox.ts";
import {
  EventSchema,
  type InventoryService,
  LineAvailabilitySchema,
  ProductSchema,
  ReservationSchema,
  ReservationStatus,
  ReservedLineSchema,
  ReserveOutcomeSchema,
  StockLevelSchema,
  StockMovementSchema,
} from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import type { Kysely } from "kysely";
import { stopWhenAborted } from "../db/abort.ts";
import type { Database, StockMovementRow } from "../db/database.ts";
import { adjustStock, checkStock, createProduct, getProduct, listProducts, type ProductWithStock } from "./products.ts";
import { callerIdentity, principalOf } from "../interceptors/authentication.ts";
import { remainingMs } from "../interceptors/deadline.ts";
import { toStatus } from "./errors.ts";
import { createCoalescing, DEFAULT_BATCH_BOUNDS, type BatchBounds, type BatchStep } from "./coalescing.ts";
import { INVENTORY_EVENT_SOURCE, listStockEvents } from "./events.ts";
import { confirmReservations, reserveOrders, type ReservationRecord, type ReserveOutcome } from "./reservations.ts";
import {
  parseAdjustStock,
  parseCheckStock,
  parseConfirmReservations,
  parseCreateProduct,
  parseListEvents,
  parseListProducts,
  parseOrderId,
  parseProductId,
  parseReleaseStock,
  parseReserveOrders,
  parseReserveStock,
} from "./validation.ts";

/** What the InventoryService implementation needs. */
export interface InventoryServiceDeps {
  db: Kysely<Database>;
  /** How long an unconfirmed reservation holds its stock. */
  reservationTtlSeconds: number;
  /** Bounds of the batches single-order calls are served in (default DEFAULT_BATCH_BOUNDS). */
  batching?: BatchBounds;
  /** Told each batch's size as it starts, for metrics. */
  onBatch?: (step: BatchStep, size: number) => void;
}

/**
 * The InventoryService RPCs: each validates its request, runs the use case
 * and turns the result into the response message. Errors are thrown as they
 * are and mapped to gRPC statuses by the error interceptor.
 *
 * Database work runs on a view of the pool bound to the call's signal: a
 * call whose deadline passed or whose client went away starts no further
 * statement, and its transaction rolls back (see stopWhenAborted).
 * ReserveStock, ReleaseStock and CommitStock are the exception: concurrent
 * calls share a transaction (see createCoalescing). ReserveOrders is a batch
 * already and runs as it comes, in one reserve_orders() call of its own:
 * splitting it across the shared queue would spread one request over
 * several transactions and make it wait behind single calls.
 *
 * The ledger records who changed stock: the token's subject for catalogue
 * changes (CreateProduct, AdjustStock), the calling client's identity for
 * reservations and their ends (see callerIdentity).
 */
export function createInventoryService(deps: InventoryServiceDeps): ServiceImpl<typeof InventoryService> {
  const forCall = ({ signal }: HandlerContext) => stopWhenAborted(deps.db, signal);
  const batches = createCoalescing({
    db: deps.db,
    reservationTtlSeconds: deps.reservationTtlSeconds,
    bounds: deps.batching ?? DEFAULT_BATCH_BOUNDS,
    onBatch: deps.onBatch,
  });
  const actor = (call: HandlerContext) => callerIdentity(principalOf(call));
  return {
    async checkStock(req, call) {
      const lines = await checkStock(forCall(call), parseCheckStock(req));
      return {
        lines: lines.map((l) => create(LineAvailabilitySchema, { ...l, isAvailable: l.available >= l.requested })),
        allAvailable: lines.every((l) => l.available >= l.requested),
      };
    },
    async reserveStock(req, call) {
      return { reservation: toReservation(await batches.reserve({ ...parseReserveStock(req), actor: actor(call) }, call)) };
    },
    async reserveOrders(req, call) {
      const orders = parseReserveOrders(req);
      const caller = actor(call);
      const valid = orders.flatMap((o) => (o.status === "fulfilled" ? [{ ...o.value, actor: caller }] : []));
      if (valid.length > 0) deps.onBatch?.("reserve_orders", valid.length);
      const decided = (await reserveOrders(forCall(call), valid, deps.reservationTtlSeconds, lockTimeoutMs(call))).values();
      return {
        outcomes: orders.map((o, i) => toOutcome(req.orders[i]!.orderId, o.status === "fulfilled" ? decided.next().value! : o)),
      };
    },
    async releaseStock(req, call) {
      const reservation = await batches.release({ ...parseReleaseStock(req), actor: actor(call) }, call);
      return { reservation: reservation && toReservation(reservation) };
    },
    async commitStock(req, call) {
      return { reservation: toReservation(await batches.commit({ orderId: parseOrderId(req.orderId), actor: actor(call) }, call)) };
    },
    async confirmReservations(req, call) {
      const { confirmed, missing } = await confirmReservations(forCall(call), parseConfirmReservations(req));
      return { confirmedOrderIds: confirmed, missingOrderIds: missing };
    },
    async getProduct(req, call) {
      return { product: toProduct(await getProduct(forCall(call), parseProductId(req.productId))) };
    },
    async listProducts(req, call) {
      const { products, nextPageToken } = await listProducts(forCall(call), parseListProducts(req));
      return { products: products.map(toProduct), nextPageToken };
    },
    async createProduct(req, call) {
      return { product: toProduct(await createProduct(forCall(call), parseCreateProduct(req), principalOf(call).subject)) };
    },
    async adjustStock(req, call) {
      const { product, movement } = await adjustStock(forCall(call), parseAdjustStock(req, principalOf(call).subject));
      return { product: toProduct(product), movement: toMovement(movement) };
    },
    async listEvents(req, call) {
      const { events, next } = await listStockEvents(forCall(call), parseListEvents(req));
      return { events: events.map(toEvent), nextPageToken: next };
    },
  };
}

/** How long a call may wait for locks: the time it has left, 0 for no bound. */
function lockTimeoutMs(call: HandlerContext): number {
  const left = remainingMs(call);
  return Number.isFinite(left) ? Math.max(1, left) : 0;
}

function toOutcome(orderId: string, outcome: ReserveOutcome) {
  return create(ReserveOutcomeSchema, {
    orderId,
    result:
      outcome.status === "fulfilled"
        ? { case: "reservation", value: toReservation(outcome.value) }
        : { case: "error", value: toStatus(outcome.reason) },
  });
}

const STATUSES = {
  reserved: ReservationStatus.RESERVED,
  confirmed: ReservationStatus.CONFIRMED,
  released: ReservationStatus.RELEASED,
  committed: ReservationStatus.COMMITTED,
  expired: ReservationStatus.EXPIRED,
} as const;

function toReservation(r: ReservationRecord) {
  return create(ReservationSchema, {
    orderId: r.order_id,
    status: STATUSES[r.status],
    lines: r.lines.map((l) =>
      create(ReservedLineSchema, {
        productId: l.product_id,
        quantity: l.quantity,
        unitPriceMinor: l.unit_price_minor,
        currency: l.currency,
      }),
    ),
    expireTime: r.expires_at ? timestampFromDate(r.expires_at) : undefined,
    createTime: timestampFromDate(r.created_at),
    updateTime: timestampFromDate(r.updated_at),
  });
}

function toProduct(p: ProductWithStock) {
  return create(ProductSchema, {
    id: p.id,
    sku: p.sku,
    name: p.name,
    description: p.description,
    priceMinor: p.price_minor,
    currency: p.currency,
    stock: create(StockLevelSchema, {
      onHand: p.on_hand,
      reserved: p.reserved,
      available: p.on_hand - p.reserved,
      lowStockThreshold: p.low_stock_threshold,
    }),
    createTime: timestampFromDate(p.created_at),
    updateTime: timestampFromDate(p.updated_at),
  });
}

function toMovement(m: StockMovementRow) {
  return create(StockMovementSchema, {
    id: m.id,
    productId: m.product_id,
    kind: m.kind,
    onHandDelta: m.on_hand_delta,
    reservedDelta: m.reserved_delta,
    orderId: m.order_id ?? "",
    note: m.note,
    actor: m.actor,
    createTime: timestampFromDate(m.created_at),
  });
}

/**
 * A recorded event with its CloudEvents attributes, its payload decoded
 * from the JSON mapping into its message and packed as google.protobuf.Any
 * (type.googleapis.com/inventory.v1.StockReserved and so on). Fields a
 * newer release added are skipped, as a reader of the broker would.
 */
function toEvent(e: RecordedEvent) {
  const schema: DescMessage = EVENT_TYPES[e.type];
  return create(EventSchema, {
    id: e.id,
    type: e.type,
    source: INVENTORY_EVENT_SOURCE,
    subject: e.subject,
    time: timestampFromDate(e.time),
    data: anyPack(schema, fromJson(schema, e.data as JsonValue, { ignoreUnknownFields: true })),
    publishTime: e.publishedAt ? timestampFromDate(e.publishedAt) : undefined,
  });
}
