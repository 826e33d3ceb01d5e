import { randomUUID } from "node:crypto";
import type { JetStreamManager } from "@nats-io/jetstream";
import { DeliverPolicy } from "@nats-io/jetstream";
import pg from "pg";
import { createTestDatabase } from "../../../tools/testing.ts";
import type { EventType, StreamName } from "../src/catalogue.ts";
import { decodeEvent, type DecodedEvent } from "../src/cloudevents.ts";
import type { EventsConfig } from "../src/config.ts";
import { jetStreamOf, type NatsConnection } from "../src/nats.ts";
import type { Logger } from "../src/relay.ts";
import { isStreamNotFound } from "../src/streams.ts";

/**
 * The outbox as the design gives it (each service's migration creates the
 * same table in its database; the tests create it in a fresh one).
 */
export const OUTBOX_DDL = `
create table outbox (
  position bigint generated always as identity primary key,
  id uuid not null default gen_random_uuid() unique,
  txid xid8 not null default pg_current_xact_id(),
  type text not null,
  subject text not null,
  data jsonb not null,
  time timestamptz not null default now(),
  published_at timestamptz
);
create index outbox_pending_idx on outbox (position) where published_at is null;
create index outbox_pending_subject_idx on outbox (subject, position) where published_at is null;
create index outbox_log_idx on outbox (txid, position);
create index outbox_type_log_idx on outbox (type, txid, position);
create index outbox_published_idx on outbox (published_at) where published_at is not null;
create function outbox_notify() returns trigger language plpgsql as $$
begin perform pg_notify('outbox', ''); return null; end $$;
create trigger outbox_notify after insert on outbox for each statement execute function outbox_notify();
`;

/** A pool whose clients never take the process down when their connection is killed (as the services' pools). */
export function testPool(url: string, max = 10, applicationName?: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, ...(applicationName ? { application_name: applicationName } : {}) });
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/** A fresh database holding an empty outbox. */
export async function outboxDatabase(label: string): Promise<{ url: string; pool: pg.Pool }> {
  const url = await createTestDatabase(label);
  const pool = testPool(url);
  await pool.query(OUTBOX_DDL);
  return { url, pool };
}

export function testConfig(overrides: Partial<EventsConfig> = {}): EventsConfig {
  return {
    natsUrl: undefined,
    format: "protobuf",
    retentionHours: 72,
    batchMax: 500,
    pollIntervalMs: 1000,
    publishTimeoutMs: 2000,
    lagWarnSeconds: 60,
    ...overrides,
  };
}

export interface LogEntry {
  level: keyof Logger;
  obj: Record<string, unknown>;
  msg: string | undefined;
}

/** A logger that keeps what it is told (and prints it when EVENTS_TEST_LOG is set). */
export function captureLogger(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at = (level: keyof Logger) => (obj: object, msg?: string) => {
    entries.push({ level, obj: obj as Record<string, unknown>, msg });
    if (process.env.EVENTS_TEST_LOG) console.log(level, msg, JSON.stringify(obj));
  };
  return { entries, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

const iso = (d = new Date()) => d.toISOString();

/** Valid event data (the proto3 JSON mapping of the catalogue's message), as the services' triggers record it. */
export function sampleData(type: EventType, subject: string, n = 1): Record<string, unknown> {
  const product = "00000000-0000-4000-8000-000000000001";
  const order = (status: string, priced: boolean) => ({
    id: subject,
    userId: `user-${n % 7}`,
    status,
    lines: [
      { productId: product, quantity: 1 + (n % 3), ...(priced ? { unitPriceMinor: "79999", currency: "USD" } : {}) },
      { productId: "00000000-0000-4000-8000-000000000002", quantity: 1, ...(priced ? { unitPriceMinor: "12999", currency: "USD" } : {}) },
    ],
    ...(priced ? { totalMinor: String(79999 * (1 + (n % 3)) + 12999), currency: "USD" } : {}),
    createTime: iso(),
    updateTime: iso(),
  });
  const level = { onHand: 10, reserved: 6, available: 4, lowStockThreshold: 5 };
  switch (type) {
    case "orders.v1.order.placed":
      return { order: order("ORDER_STATUS_PENDING", false) };
    case "orders.v1.order.confirmed":
      return { order: order("ORDER_STATUS_CONFIRMED", true) };
    case "orders.v1.order.rejected":
      return { order: { ...order("ORDER_STATUS_REJECTED", false), rejectionReason: "insufficient stock" } };
    case "orders.v1.order.cancelled":
      return { order: order("ORDER_STATUS_CANCELLED", true), previousStatus: "ORDER_STATUS_CONFIRMED" };
    case "orders.v1.order.fulfilled":
      return { order: order("ORDER_STATUS_FULFILLED", true) };
    case "inventory.v1.stock.reserved":
      return {
        orderId: subject,
        lines: [{ productId: product, quantity: 2, unitPriceMinor: "79999", currency: "USD" }],
        expireTime: iso(new Date(Date.now() + 600_000)),
      };
    case "inventory.v1.stock.released":
      return { orderId: subject, lines: [{ productId: product, quantity: 2 }], status: "RESERVATION_STATUS_RELEASED" };
    case "inventory.v1.stock.committed":
      return { orderId: subject, lines: [{ productId: product, quantity: 2 }] };
    case "inventory.v1.stock.adjusted":
      return {
        productId: subject,
        movement: { id: String(n), productId: subject, kind: "restock", onHandDelta: 10, note: "", actor: "ops", createTime: iso() },
        stock: level,
      };
    case "inventory.v1.stock.low":
      return { productId: subject, sku: `SKU-${n}`, stock: level, threshold: 5 };
  }
}

/** The order events of one order, in the order they happen. */
export const ORDER_LIFE: EventType[] = ["orders.v1.order.placed", "orders.v1.order.confirmed", "orders.v1.order.fulfilled"];

/**
 * Records events as a service does: in one statement of a transaction that
 * holds the lock of each subject (a service holds the row lock of the order
 * or product it changes), so a subject's events are recorded in order.
 */
export async function recordEvents(
  db: pg.Pool | pg.PoolClient,
  events: { type: EventType; subject: string; data?: unknown }[],
): Promise<void> {
  const client = "release" in db ? db : await db.connect();
  try {
    await client.query("begin");
    for (const subject of [...new Set(events.map((e) => e.subject))].sort()) {
      await client.query("select pg_advisory_xact_lock(hashtextextended($1, 0))", [subject]);
    }
    await client.query(
      `insert into outbox (type, subject, data)
       select type, subject, data from jsonb_to_recordset($1::jsonb) as e(type text, subject text, data jsonb)`,
      [JSON.stringify(events.map((e, i) => ({ type: e.type, subject: e.subject, data: e.data ?? sampleData(e.type, e.subject, i) })))],
    );
    await client.query("commit");
  } catch (e) {
    await client.query("rollback").catch(() => {});
    throw e;
  } finally {
    if (!("release" in db)) (client as pg.PoolClient).release();
  }
}

/** Every recorded event, in recording order. */
export async function outboxRows(pool: pg.Pool) {
  const { rows } = await pool.query<{ position: string; id: string; type: string; subject: string; published_at: Date | null }>(
    "select position::text, id, type, subject, published_at from outbox order by position",
  );
  return rows;
}

export interface StreamMessage {
  seq: number;
  subject: string;
  msgId: string;
  headers: Record<string, string>;
  decoded: DecodedEvent;
}

/** Every message of a stream, in stream order, decoded (throws on one that is not one of our events). */
export async function readStream(nc: NatsConnection, jsm: JetStreamManager, stream: StreamName): Promise<StreamMessage[]> {
  // The test's own connection may still be reconnecting after the broker came
  // back: only a stream that does not exist reads as empty; anything else is waited out.
  const deadline = Date.now() + 15_000;
  let info: Awaited<ReturnType<JetStreamManager["streams"]["info"]>> | undefined;
  for (;;) {
    try {
      info = await jsm.streams.info(stream);
      break;
    } catch (e) {
      if (isStreamNotFound(e)) break;
      if (Date.now() > deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  const total = info?.state.messages ?? 0;
  if (!total) return [];
  const consumer = await jetStreamOf(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  const out: StreamMessage[] = [];
  const messages = await consumer.consume({ max_messages: 500 });
  for await (const m of messages) {
    const decoded = decodeEvent(m.headers, m.data);
    if (!decoded.ok) throw new Error(`message ${m.seq} on ${m.subject} is not an event: ${decoded.error}`);
    const headers: Record<string, string> = {};
    for (const [k, v] of m.headers!) headers[k] = v[0]!;
    out.push({ seq: m.seq, subject: m.subject, msgId: m.headers!.get("Nats-Msg-Id"), headers, decoded: decoded.value });
    if (m.info.pending === 0) break;
  }
  await messages.close();
  return out;
}

/** Waits until `check` holds (returns truthy), polling; fails with `what` after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T> | T, what: string, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Events of `subjects` orders, each living its life (placed, confirmed, fulfilled). */
export function orderSubjects(n: number): string[] {
  return Array.from({ length: n }, () => randomUUID());
}

/**
 * Checks what a stream holds of the given outbox rows: each event exactly
 * once, and the events of each subject in recording order. Returns the
 * messages of those rows.
 */
export function checkExactlyOnceInOrder(
  rows: { position: string; id: string; type: string; subject: string }[],
  messages: StreamMessage[],
): { missing: string[]; duplicated: string[]; outOfOrder: string[] } {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const seen = new Map<string, number>();
  const lastPosition = new Map<string, bigint>();
  const outOfOrder: string[] = [];
  for (const m of messages) {
    const row = byId.get(m.decoded.attributes.id);
    if (!row) continue;
    seen.set(row.id, (seen.get(row.id) ?? 0) + 1);
    const position = BigInt(row.position);
    const previous = lastPosition.get(row.subject);
    if (previous !== undefined && previous > position) outOfOrder.push(`${row.subject}: ${previous} before ${position}`);
    lastPosition.set(row.subject, position);
  }
  return {
    missing: rows.filter((r) => !seen.has(r.id)).map((r) => r.id),
    duplicated: [...seen].filter(([, n]) => n > 1).map(([id]) => id),
    outOfOrder,
  };
}
