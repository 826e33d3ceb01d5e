import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type InventoryService,
  LineAvailabilitySchema,
  ProductSchema,
  ReservationSchema,
  ReservationStatus,
  ReservedLineSchema,
  StockLevelSchema,
  StockMovementSchema,
} from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import type { Kysely } from "kysely";
import type { Database, StockMovementRow } from "../db/database.ts";
import { adjustStock, checkStock, createProduct, getProduct, listProducts, type ProductWithStock } from "./products.ts";
import {
  commitStock,
  confirmReservations,
  releaseStock,
  reserveStock,
  type ReservationRecord,
} from "./reservations.ts";
import {
  parseAdjustStock,
  parseCheckStock,
  parseConfirmReservations,
  parseCreateProduct,
  parseListProducts,
  parseOrderId,
  parseProductId,
  parseReleaseStock,
  parseReserveStock,
} from "./validation.ts";

/** What the InventoryService implementation needs. */
export interface InventoryServiceDeps {
  db: Kysely<Database>;
  /** How long an unconfirmed reservation holds its stock. */
  reservationTtlSeconds: number;
}

/**
 * The InventoryService RPCs: each validates its request, runs the use case
 * and turns the result into the response message. Errors are thrown as they
 * are and mapped to gRPC statuses by the error interceptor.
 */
export function createInventoryService(deps: InventoryServiceDeps): ServiceImpl<typeof InventoryService> {
  const { db } = deps;
  return {
    async checkStock(req) {
      const lines = await checkStock(db, parseCheckStock(req));
      return {
        lines: lines.map((l) => create(LineAvailabilitySchema, { ...l, isAvailable: l.available >= l.requested })),
        allAvailable: lines.every((l) => l.available >= l.requested),
      };
    },
    async reserveStock(req) {
      return { reservation: toReservation(await reserveStock(db, parseReserveStock(req), deps.reservationTtlSeconds)) };
    },
    async releaseStock(req) {
      const { orderId, reason } = parseReleaseStock(req);
      const reservation = await releaseStock(db, orderId, reason);
      return { reservation: reservation && toReservation(reservation) };
    },
    async commitStock(req) {
      return { reservation: toReservation(await commitStock(db, parseOrderId(req.orderId))) };
    },
    async confirmReservations(req) {
      const { confirmed, missing } = await confirmReservations(db, parseConfirmReservations(req));
      return { confirmedOrderIds: confirmed, missingOrderIds: missing };
    },
    async getProduct(req) {
      return { product: toProduct(await getProduct(db, parseProductId(req.productId))) };
    },
    async listProducts(req) {
      const { products, nextPageToken } = await listProducts(db, parseListProducts(req));
      return { products: products.map(toProduct), nextPageToken };
    },
    async createProduct(req) {
      return { product: toProduct(await createProduct(db, parseCreateProduct(req))) };
    },
    async adjustStock(req) {
      const { product, movement } = await adjustStock(db, parseAdjustStock(req));
      return { product: toProduct(product), movement: toMovement(movement) };
    },
  };
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
    stock: create(StockLevelSchema, { onHand: p.on_hand, reserved: p.reserved, available: p.on_hand - p.reserved }),
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
