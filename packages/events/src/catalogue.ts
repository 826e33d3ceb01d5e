import type { DescMessage } from "@bufbuild/protobuf";
import { createRegistry } from "@bufbuild/protobuf";
import {
  file_inventory_v1_events,
  StockAdjustedSchema,
  StockCommittedSchema,
  StockLowSchema,
  StockReleasedSchema,
  StockReservedSchema,
} from "@ecommerce/gen/inventory/v1/events_pb.ts";
import {
  file_orders_v1_events,
  OrderCancelledSchema,
  OrderConfirmedSchema,
  OrderFulfilledSchema,
  OrderPlacedSchema,
  OrderRejectedSchema,
} from "@ecommerce/gen/orders/v1/events_pb.ts";

/**
 * Every event type the system publishes, with the message its payload is.
 * An event's type is at once its CloudEvents `ce-type` and its NATS
 * subject; the stream that holds it is named by its first token. This
 * table is the one place that ties the three together: the outbox stores
 * the type, the relay encodes and publishes by it, consumers decode by it.
 */
export const EVENT_TYPES = {
  "orders.v1.order.placed": OrderPlacedSchema,
  "orders.v1.order.confirmed": OrderConfirmedSchema,
  "orders.v1.order.rejected": OrderRejectedSchema,
  "orders.v1.order.cancelled": OrderCancelledSchema,
  "orders.v1.order.fulfilled": OrderFulfilledSchema,
  "inventory.v1.stock.reserved": StockReservedSchema,
  "inventory.v1.stock.released": StockReleasedSchema,
  "inventory.v1.stock.committed": StockCommittedSchema,
  "inventory.v1.stock.adjusted": StockAdjustedSchema,
  "inventory.v1.stock.low": StockLowSchema,
} as const satisfies Record<string, DescMessage>;

export type EventType = keyof typeof EVENT_TYPES;

/** The JetStream streams, each holding the subjects of one service's events. */
export const STREAMS = {
  ORDERS: { subjects: ["orders.v1.>"] },
  INVENTORY: { subjects: ["inventory.v1.>"] },
} as const;

export type StreamName = keyof typeof STREAMS;

/** The stream that holds events of `type`. */
export function streamOf(type: EventType): StreamName {
  return type.startsWith("orders.") ? "ORDERS" : "INVENTORY";
}

export function isEventType(type: string): type is EventType {
  return Object.hasOwn(EVENT_TYPES, type);
}

/** Every event message, for decoding payloads and google.protobuf.Any by name. */
export const eventRegistry = createRegistry(file_orders_v1_events, file_inventory_v1_events);
