/**
 * `make events`: watches the events flow through NATS JetStream, one line
 * per event (time, type, subject, what happened), from both streams.
 *
 *   node tools/events.ts [--all] [--type <prefix>]
 *
 * --all         from the oldest event the streams hold (default: new events only)
 * --type <p>    only the types starting with <p>, e.g. orders.v1.order or inventory.v1.stock.low
 *
 * NATS_URL says where the broker is (default nats://127.0.0.1:4222). The
 * streams are made by the services when they start; until then it waits.
 * Each tail is an ephemeral consumer: it acknowledges nothing and takes
 * nothing away from the services' own consumers.
 */
import { parseArgs } from "node:util";
import { ReservationStatusSchema, type Line, type StockLevel } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { OrderStatusSchema, type Order } from "@ecommerce/gen/orders/v1/events_pb.ts";
import { EVENT_TYPES, STREAMS, streamOf, type EventType, type StreamName } from "@ecommerce/events/catalogue.ts";
import { consume, type EventConsumer, type ReceivedEvent } from "@ecommerce/events/consumer.ts";
import { connectNats, jetStreamManagerOf, type NatsConnection } from "@ecommerce/events/nats.ts";
import type { Logger } from "@ecommerce/events/relay.ts";

const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

/** What a tail of `prefix` reads: the streams, a server-side filter when one subject covers it, and a check for each event. */
export function tailPlan(prefix: string | undefined): { streams: StreamName[]; filter: string | undefined; matches: (type: string) => boolean } | undefined {
  const all = Object.keys(EVENT_TYPES) as EventType[];
  if (!prefix) return { streams: Object.keys(STREAMS) as StreamName[], filter: undefined, matches: () => true };
  const matched = all.filter((t) => t.startsWith(prefix));
  if (!matched.length) return undefined;
  const streams = [...new Set(matched.map(streamOf))];
  const base = prefix.replace(/\.$/, "");
  let filter = all.includes(prefix as EventType) ? prefix : matched.every((t) => t.startsWith(`${base}.`)) ? `${base}.>` : undefined;
  // A consumer's filter must lie within its stream's subjects (orders.v1.> and so on); a wider
  // prefix (say "orders") is checked here, event by event, instead.
  const within = STREAMS[streams[0]!].subjects[0].replace(/>$/, "");
  if (streams.length > 1 || (filter && (!filter.startsWith(within) || filter === `${within}>`))) filter = undefined;
  return { streams, filter, matches: (type) => type.startsWith(prefix) };
}

/** One line for an event: time, type, subject and what happened. */
export function formatEvent(event: ReceivedEvent): string {
  const time = event.time.toISOString().replace("T", " ").slice(0, 23);
  return `${time}  ${event.type.padEnd(28)} ${event.subject.padEnd(36)}  ${summarize(event)}`;
}

/** A short human account of what the event says (the order or product only when it is not the event's subject). */
export function summarize(event: ReceivedEvent): string {
  const about = (name: string, id: string) => (id === event.subject ? "" : `${name}=${id} `);
  switch (event.type) {
    case "orders.v1.order.placed":
    case "orders.v1.order.confirmed":
    case "orders.v1.order.fulfilled":
      return orderSummary(event.data.order);
    case "orders.v1.order.rejected":
      return `${orderSummary(event.data.order)}${event.data.order?.rejectionReason ? ` reason="${event.data.order.rejectionReason}"` : ""}`;
    case "orders.v1.order.cancelled":
      return `${orderSummary(event.data.order)} from=${orderStatus(event.data.previousStatus)}`;
    case "inventory.v1.stock.reserved": {
      const d = event.data;
      const units = d.lines.reduce((n, l) => n + l.quantity, 0);
      const expires = d.expireTime ? ` expires=${new Date(Number(d.expireTime.seconds) * 1000).toISOString().slice(11, 19)}` : "";
      return `${about("order", d.orderId)}${lines(d.lines)} units=${units}${expires}`;
    }
    case "inventory.v1.stock.released": {
      const d = event.data;
      const status = ReservationStatusSchema.values.find((v) => v.number === d.status)?.name.replace("RESERVATION_STATUS_", "").toLowerCase() ?? String(d.status);
      return `${about("order", d.orderId)}${lines(d.lines)} units=${d.lines.reduce((n, l) => n + l.quantity, 0)} ${status}`;
    }
    case "inventory.v1.stock.committed": {
      const d = event.data;
      return `${about("order", d.orderId)}${lines(d.lines)} units=${d.lines.reduce((n, l) => n + l.quantity, 0)} sold`;
    }
    case "inventory.v1.stock.adjusted": {
      const d = event.data;
      const delta = d.movement?.onHandDelta ?? 0;
      return `${about("product", d.productId)}${d.movement?.kind ?? "adjustment"} on_hand${delta >= 0 ? "+" : ""}${delta} → ${level(d.stock)}`;
    }
    case "inventory.v1.stock.low": {
      const d = event.data;
      return `${about("product", d.productId)}sku=${d.sku} LOW available=${d.stock?.available ?? "?"} < threshold=${d.threshold} (${level(d.stock)})`;
    }
  }
}

function orderSummary(order: Order | undefined): string {
  if (!order) return "(no order)";
  const units = order.lines.reduce((n, l) => n + l.quantity, 0);
  const total = order.totalMinor !== undefined ? ` total=${money(order.totalMinor, order.currency)}` : "";
  return `user=${order.userId} status=${orderStatus(order.status)} lines=${order.lines.length} units=${units}${total}`;
}

function orderStatus(status: number): string {
  return OrderStatusSchema.values.find((v) => v.number === status)?.name.replace("ORDER_STATUS_", "").toLowerCase() ?? String(status);
}

function lines(ls: readonly Pick<Line, "productId" | "quantity">[]): string {
  // The end of a product id: the sample products share their first 24 characters, never their last 12.
  const shown = ls.slice(0, 3).map((l) => `…${l.productId.slice(-12)}×${l.quantity}`);
  return `lines=${ls.length} [${shown.join(" ")}${ls.length > 3 ? " …" : ""}]`;
}

function level(stock: StockLevel | undefined): string {
  if (!stock) return "(no level)";
  return `on_hand=${stock.onHand} reserved=${stock.reserved} available=${stock.available}`;
}

/** Integer minor units as an amount in the currency's own decimals: 159998n USD → "1599.98 USD". */
export function money(minor: bigint, currency: string): string {
  let digits = 2;
  try {
    digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    // not an ISO 4217 code: two decimals
  }
  const negative = minor < 0n;
  const text = (negative ? -minor : minor).toString().padStart(digits + 1, "0");
  const amount = digits ? `${text.slice(0, -digits)}.${text.slice(-digits)}` : text;
  return `${negative ? "-" : ""}${amount} ${currency}`.trim();
}

export function noBrokerMessage(url: string, reason: string): string {
  return `No NATS broker answers at ${url} (${reason}).

The events are not lost without one: each service records every event in its
own outbox, in the transaction of the change, and publishes them once a
broker is there. Meanwhile they can be read from the outboxes:
  order service:      GET /api/v1/events (a staff token), e.g.
                        curl -s http://localhost:8080/api/v1/events -H "authorization: Bearer $STAFF"
  inventory service:  the ListEvents RPC of inventory.v1.InventoryService

To watch them here, run a NATS server with JetStream (nats-server -js) and
start the services with NATS_URL set, e.g. NATS_URL=nats://127.0.0.1:4222 make dev,
or point NATS_URL at your broker.`;
}

async function main() {
  const { values } = parseArgs({
    options: { all: { type: "boolean", default: false }, type: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log("usage: node tools/events.ts [--all] [--type <prefix>]   (NATS_URL, default nats://127.0.0.1:4222)");
    return 0;
  }
  const plan = tailPlan(values.type);
  if (!plan) {
    console.error(`No event type starts with "${values.type}". The types are:\n  ${Object.keys(EVENT_TYPES).join("\n  ")}`);
    return 2;
  }
  const url = process.env.NATS_URL?.trim() || DEFAULT_NATS_URL;
  let nc: NatsConnection;
  try {
    nc = await connectNats({ url, name: "make events", waitOnFirstConnect: false, timeoutMs: 3000 });
  } catch (e) {
    console.error(noBrokerMessage(url, (e as Error).message));
    return 1;
  }
  try {
    await (await jetStreamManagerOf(nc, 3000)).getAccountInfo();
  } catch (e) {
    await nc.close();
    console.error(noBrokerMessage(url, `the server has no JetStream: ${(e as Error).message}`));
    return 1;
  }
  const note = (msg: string) => console.error(`# ${msg}`);
  const logger: Logger = {
    debug: () => {},
    info: (obj, msg) => {
      if (msg?.startsWith("waiting for stream")) note(msg);
    },
    warn: (obj, msg) => note(`${msg} ${JSON.stringify(obj)}`),
    error: (obj, msg) => note(`${msg} ${JSON.stringify(obj)}`),
  };
  note(
    `watching ${plan.streams.join(" and ")} on ${url}${values.type ? `, types ${values.type}*` : ""}; ` +
      `${values.all ? "everything the streams hold" : "new events only (--all for everything the streams hold)"}. Ctrl-C stops.`,
  );
  const consumers: EventConsumer[] = plan.streams.map((stream) =>
    consume({
      nats: nc,
      stream,
      deliverPolicy: values.all ? "all" : "new",
      ...(plan.filter ? { filterSubjects: [plan.filter] } : {}),
      logger,
      handle: (event) => {
        if (plan.matches(event.type)) console.log(formatEvent(event));
      },
    }),
  );
  const stopped = new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  void Promise.all(consumers.map((c) => c.ready)).then(() => note("ready"));
  await stopped;
  await Promise.all(consumers.map((c) => c.stop()));
  await nc.close();
  return 0;
}

if (import.meta.main) process.exitCode = await main();
