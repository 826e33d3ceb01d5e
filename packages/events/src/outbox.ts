import { isEventType, type EventType } from "./catalogue.ts";

/**
 * The outbox as readers see it: the events a service recorded, in the
 * order their transactions committed, whether or not a broker received
 * them. Each service's migrations create the table (see the README,
 * "Events"); the relay (relay.ts) publishes from it.
 *
 * Listing pages by (txid, position) and shows only events whose
 * transaction is older than every transaction still running: a reader
 * that polls with the cursor it was given never skips an event that a
 * slow transaction committed after a faster one (a sequence alone would:
 * positions are taken at insert, not at commit).
 */

/** Anything that runs a parameterised query: a pg Pool, PoolClient or Client. */
export interface Queryable {
  query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** An event as recorded in the outbox. */
export interface RecordedEvent {
  /** ce-id, the Nats-Msg-Id. */
  id: string;
  type: EventType;
  /** ce-subject: the order or product the event is about. */
  subject: string;
  /** ce-time. */
  time: Date;
  /** The event message in the proto3 JSON mapping. */
  data: Record<string, unknown>;
  /** When the relay published it; null until then (or when publishing is off). */
  publishedAt: Date | null;
}

export interface EventPage {
  /** Oldest first. */
  events: RecordedEvent[];
  /** Where the next page starts; always set, so a later call with it returns the events recorded since. */
  next: string;
}

/** A cursor that is not one of ours (hand-made, truncated or from another listing). */
export class InvalidCursorError extends Error {
  constructor() {
    super("The cursor is not one this listing returned.");
    this.name = "InvalidCursorError";
  }
}

/** Most events one page may hold. */
export const EVENT_PAGE_MAX = 500;

interface Row {
  txid: string;
  position: string;
  id: string;
  type: string;
  subject: string;
  data: Record<string, unknown>;
  time: Date;
  published_at: Date | null;
}

/**
 * One page of recorded events after `after` (from the oldest when
 * absent), of one type when `type` is given.
 */
export async function listEvents(
  db: Queryable,
  options: { after?: string | undefined; type?: EventType | undefined; limit: number },
): Promise<EventPage> {
  const limit = Math.max(1, Math.min(EVENT_PAGE_MAX, Math.trunc(options.limit)));
  const after = options.after === undefined || options.after === "" ? undefined : decodeCursor(options.after);
  const values: unknown[] = [limit];
  const where = ["txid < pg_snapshot_xmin(pg_current_snapshot())"];
  if (after) {
    values.push(after.txid, after.position);
    where.push(`(txid, position) > ($${values.length - 1}::xid8, $${values.length}::bigint)`);
  }
  if (options.type !== undefined) {
    values.push(options.type);
    where.push(`type = $${values.length}`);
  }
  const { rows } = await db.query<Row>(
    `select txid::text, position::text, id, type, subject, data, time, published_at
       from outbox where ${where.join(" and ")}
      -- Qualified: bare names would be the text columns of the select list, and sort as text.
      order by outbox.txid, outbox.position limit $1`,
    values,
  );
  const last = rows.at(-1);
  return {
    events: rows.filter((row) => isEventType(row.type)).map(toRecordedEvent),
    next: last ? encodeCursor(last) : (options.after ?? encodeCursor({ txid: "0", position: "0" })),
  };
}

/** How far publishing is behind. */
export interface OutboxStatus {
  /** Events not yet published, counted up to {@link UNPUBLISHED_COUNT_MAX} (more reads as that). */
  unpublished: number;
  /** Age of the oldest unpublished event; null when every event is published. */
  oldestUnpublishedAgeSeconds: number | null;
}

/** Counting stops here, so that a probe stays cheap however long the broker has been away. */
export const UNPUBLISHED_COUNT_MAX = 10_000;

export async function outboxStatus(db: Queryable): Promise<OutboxStatus> {
  const { rows } = await db.query<{ unpublished: number; age: number | null }>(
    `select (select count(*)::int from (select 1 from outbox where published_at is null limit ${UNPUBLISHED_COUNT_MAX}) t) as unpublished,
            (select extract(epoch from now() - time)::float8 from outbox where published_at is null order by position limit 1) as age`,
  );
  const row = rows[0]!;
  return { unpublished: row.unpublished, oldestUnpublishedAgeSeconds: row.age === null ? null : Math.max(0, row.age) };
}

function toRecordedEvent(row: Row): RecordedEvent {
  return {
    id: row.id,
    type: row.type as EventType,
    subject: row.subject,
    time: row.time,
    data: row.data,
    publishedAt: row.published_at,
  };
}

function encodeCursor(at: { txid: string; position: string }): string {
  return Buffer.from(`${at.txid}.${at.position}`).toString("base64url");
}

function decodeCursor(cursor: string): { txid: string; position: string } {
  const match = /^(\d{1,20})\.(\d{1,19})$/.exec(Buffer.from(cursor, "base64url").toString("latin1"));
  // Within xid8 and bigint: a larger number is no cursor of ours, and would fail in SQL.
  if (!match || cursor.length > 64 || BigInt(match[1]!) >= 2n ** 64n || BigInt(match[2]!) >= 2n ** 63n) throw new InvalidCursorError();
  return { txid: match[1]!, position: match[2]! };
}
