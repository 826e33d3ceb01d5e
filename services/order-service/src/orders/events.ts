import { EVENT_TYPES, type EventType } from "@ecommerce/events/catalogue.ts";
import type { EventsConfig } from "@ecommerce/events/config.ts";
import { InvalidCursorError, listEvents, outboxStatus, type Queryable, type RecordedEvent } from "@ecommerce/events/outbox.ts";
import { CompiledQuery, type Kysely } from "kysely";
import type { Database } from "../db/database.ts";
import { invalidCursor } from "../errors.ts";

/**
 * The order events as clients read them. The events themselves are
 * recorded by the database (migration 0005): a trigger on `orders` writes
 * each status change's event to the outbox in the statement that makes the
 * change, whichever code or person makes it. This module only reads them.
 */

/** The events this service records, one per change of an order's status. */
export type OrderEventType = Extract<EventType, `orders.${string}`>;
export const ORDER_EVENT_TYPES: readonly OrderEventType[] = (Object.keys(EVENT_TYPES) as EventType[]).filter(
  (type): type is OrderEventType => type.startsWith("orders."),
);

/** ce-source of every event of this service. */
export const EVENT_SOURCE = "/order-service";

/** orders.v1.Order in the proto3 JSON mapping, as the trigger of migration 0005 writes it. */
export interface OrderEventOrder {
  id: string;
  userId: string;
  status: string;
  lines?: { productId: string; quantity: number; unitPriceMinor?: string; currency?: string }[];
  totalMinor?: string;
  currency?: string;
  rejectionReason?: string;
  createTime: string;
  updateTime: string;
}

/** The payload of every order event (previousStatus for cancellations only). */
export interface OrderEventData {
  order: OrderEventOrder;
  previousStatus?: string;
}

/** An event in the CloudEvents 1.0 JSON format (structured mode). */
export interface CloudEvent {
  specversion: "1.0";
  id: string;
  source: typeof EVENT_SOURCE;
  type: OrderEventType;
  subject: string;
  time: string;
  datacontenttype: "application/json";
  /** The event message in the proto3 JSON mapping. */
  data: OrderEventData;
}

/** A page of events, oldest first, and where the next one starts. */
export interface EventPage {
  data: CloudEvent[];
  /** Always set: passed back later, it answers the events recorded since. */
  next_cursor: string;
}

/** The orders database as the events package queries it. */
export function queryable(db: Kysely<Database>): Queryable {
  return {
    query: <R extends object>(text: string, values: unknown[] = []) => db.executeQuery<R>(CompiledQuery.raw(text, values)),
  };
}

/**
 * One page of the recorded order events, in the order they were committed,
 * after `cursor` (from the first otherwise), of one type when given.
 */
export async function listOrderEvents(
  db: Kysely<Database>,
  query: { cursor?: string | undefined; type?: OrderEventType | undefined; limit: number },
): Promise<EventPage> {
  try {
    const page = await listEvents(queryable(db), { after: query.cursor, type: query.type, limit: query.limit });
    return { data: page.events.map(toCloudEvent), next_cursor: page.next };
  } catch (error) {
    if (error instanceof InvalidCursorError) throw invalidCursor();
    throw error;
  }
}

function toCloudEvent(event: RecordedEvent): CloudEvent {
  return {
    specversion: "1.0",
    id: event.id,
    source: EVENT_SOURCE,
    // This service's outbox holds its own events only.
    type: event.type as OrderEventType,
    subject: event.subject,
    time: event.time.toISOString(),
    datacontenttype: "application/json",
    data: event.data as unknown as OrderEventData,
  };
}

/** What readiness says of the events: whether they are published, and how far behind publishing is. */
export interface EventsReadiness {
  publishing: boolean;
  /** Events not yet published (counted up to 10,000); absent when the outbox could not be read. */
  unpublished?: number;
  /** Age of the oldest of them, null when there is none; absent when the outbox could not be read. */
  oldest_unpublished_age_seconds?: number | null;
}

/** The events part of readiness; never fails: an outbox that cannot be read leaves the lag out. */
export async function eventsReadiness(db: Kysely<Database>, config: EventsConfig): Promise<EventsReadiness> {
  const publishing = config.natsUrl !== undefined;
  try {
    const status = await outboxStatus(queryable(db));
    return { publishing, unpublished: status.unpublished, oldest_unpublished_age_seconds: status.oldestUnpublishedAgeSeconds };
  } catch {
    return { publishing };
  }
}

/**
 * The events settings as the start-up log shows them: whether events are
 * published and where to (the servers without credentials), or where to
 * read them otherwise.
 */
export function describeEvents(config: EventsConfig): { fields: Record<string, unknown>; message: string } {
  if (config.natsUrl === undefined) {
    return {
      fields: { events: { publishing: false, retentionHours: config.retentionHours } },
      message: "events: publishing off (NATS_URL is not set); order events are recorded in the outbox and listed at GET /api/v1/events",
    };
  }
  const servers = config.natsUrl.split(",").map((server) => server.trim().replace(/\/\/[^@/]*@/, "//"));
  return {
    fields: {
      events: {
        publishing: true,
        servers,
        format: config.format,
        batchMax: config.batchMax,
        pollIntervalMs: config.pollIntervalMs,
        publishTimeoutMs: config.publishTimeoutMs,
        retentionHours: config.retentionHours,
        lagWarnSeconds: config.lagWarnSeconds,
      },
    },
    message: `events: publishing on, to NATS JetStream at ${servers.join(", ")} (${config.format})`,
  };
}
