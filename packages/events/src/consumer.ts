import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type Consumer,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import type pg from "pg";
import type { EventType, StreamName } from "./catalogue.ts";
import { decodeEvent, type EventMessage } from "./cloudevents.ts";
import { jetStreamManagerOf, jetStreamOf, type NatsConnection } from "./nats.ts";
import type { Queryable } from "./outbox.ts";
import { backoffMs, type Logger } from "./relay.ts";
import { isStreamNotFound } from "./streams.ts";
import { inTransaction } from "./transaction.ts";

/**
 * Consuming events: a pull consumer on one stream that decodes every
 * message into a {@link ReceivedEvent} and hands it to a handler, one at a
 * time, in stream order.
 *
 * With an inbox, each event is handled exactly once as far as the
 * consumer's database can tell: in one transaction the event id is
 * inserted into event_inbox (consumer, event_id) — a conflict means it was
 * handled before — the handler runs on the same transaction, it commits,
 * and only then is the message acknowledged. A crash before the commit
 * leaves nothing and the message comes again; a crash after it, the
 * redelivered message finds its id and is only acknowledged. A publisher
 * that sends an event twice (the outbox relay past JetStream's
 * deduplication window) is caught the same way.
 */

interface ReceivedEventBase {
  /** ce-id: a UUID, the same however many times the event is delivered or published. */
  id: string;
  /** ce-source: /order-service or /inventory-service. */
  source: string;
  /** ce-subject: the order or product the event is about. */
  subject: string;
  /** ce-time: when it happened. */
  time: Date;
  /** The stream it was read from and its sequence there. */
  stream: string;
  streamSequence: number;
  /** Whether JetStream delivered it before (to this consumer). */
  redelivered: boolean;
  /** How many times JetStream delivered it to this consumer, this time included. */
  deliveryCount: number;
}

/** An event as a handler receives it; narrowing on `type` types `data`. */
export type ReceivedEvent = {
  [T in EventType]: ReceivedEventBase & { type: T; data: EventMessage<T> };
}[EventType];

export interface InboxOptions {
  /** The consumer's own database, holding its event_inbox table (see {@link createInbox}). */
  pool: pg.Pool;
  /** The name the inbox records the consumer under; usually the durable name. */
  consumer: string;
  /**
   * How long the inbox remembers an event it handled; default 8 days, longer
   * than the streams keep a message (7 days), so that any delivery the stream
   * can still make is recognised. Older entries are deleted as the consumer goes.
   */
  retentionHours?: number;
}

/** Most inbox entries one pruning statement deletes, and how often the consumer prunes. */
const INBOX_PRUNE = { batch: 1000, everyMs: 60_000 } as const;
export const INBOX_RETENTION_HOURS = 8 * 24;

interface CommonConsumeOptions {
  nats: NatsConnection;
  stream: StreamName;
  logger: Logger;
  /**
   * The durable consumer's name: it is created (or updated) on the stream and
   * remembers what was acknowledged across restarts, shared by every replica.
   * Without one the consumer is ephemeral: ordered, never acknowledging, removed
   * by the server once nobody reads it (for tails and tools).
   */
  durable?: string;
  /** Only these subjects (types; wildcards allowed). Default: the whole stream. */
  filterSubjects?: readonly string[];
  /** Where a new consumer starts: every event the stream holds (default) or only those published from now on. */
  deliverPolicy?: "all" | "new";
  /** How long JetStream waits for an acknowledgement before delivering again; default 30 s. */
  ackWaitMs?: number;
  /** Most deliveries of one message; default unlimited (-1): an event is never dropped because its handler kept failing. */
  maxDeliver?: number;
  /** How long after a failed handling the message comes again; default 1 s doubling up to a minute. */
  redeliveryDelayMs?: number | ((deliveryCount: number) => number);
  /** Messages pulled at once; default 100. */
  batch?: number;
  /** Test hook: called after the inbox transaction committed and before the acknowledgement. */
  afterCommit?: (event: ReceivedEvent) => Promise<void> | void;
}

export type ConsumeOptions = CommonConsumeOptions &
  (
    | {
        inbox: InboxOptions;
        /** Applies the event's effects on `tx`, the transaction that records it in the inbox; throwing rolls both back. */
        handle: (event: ReceivedEvent, tx: pg.PoolClient) => Promise<void>;
      }
    | {
        inbox?: undefined;
        handle: (event: ReceivedEvent) => Promise<void> | void;
      }
  );

export interface EventConsumer {
  /** Resolves once the consumer exists on the server and messages are being pulled (after waiting for the stream to exist), or once it is stopped. */
  ready: Promise<void>;
  /** Stops pulling, lets the event being handled finish, and resolves when it has. */
  stop(): Promise<void>;
}

/**
 * Creates the inbox table of a consumer's database when it is missing. Each
 * consuming service owns its database, so it calls this (or has the same in
 * its migrations) before consuming.
 */
export async function createInbox(db: Queryable): Promise<void> {
  await db.query(`create table if not exists event_inbox (
    consumer text not null,
    event_id uuid not null,
    received_at timestamptz not null default now(),
    primary key (consumer, event_id)
  )`);
}

/**
 * Deletes up to `batch` of `consumer`'s inbox entries older than
 * `retentionHours`; answers how many went. The consumer calls it as it goes.
 */
export async function pruneInbox(db: Queryable, consumer: string, retentionHours: number, batch: number = INBOX_PRUNE.batch): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `with gone as (
       delete from event_inbox where ctid = any(array(
         select ctid from event_inbox where consumer = $1 and received_at < now() - make_interval(hours => $2) limit $3))
       returning 1)
     select count(*)::int as n from gone`,
    [consumer, retentionHours, batch],
  );
  return rows[0]!.n;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Starts consuming; see {@link ConsumeOptions}. Setup problems (no stream yet, broker away) are retried, not thrown. */
export function consume(options: ConsumeOptions): EventConsumer {
  const { nats: nc, stream, logger } = options;
  const durable = options.durable;
  const log = (level: keyof Logger, obj: object, msg: string) =>
    logger[level]({ component: "events-consumer", stream, consumer: durable ?? "(ephemeral)", ...obj }, msg);
  let stopping = false;
  let messages: ConsumerMessages | undefined;
  let ephemeral: Consumer | undefined;
  let wakeSleep: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopping) return resolve();
      const timer = setTimeout(() => {
        wakeSleep = undefined;
        resolve();
      }, ms);
      wakeSleep = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const running = run()
    .catch((e: Error) => log("error", { error: e.message }, "the consumer stopped on an unexpected error"))
    .finally(() => markReady());

  async function run() {
    const jsm = await jetStreamManagerOf(nc);
    const js = jetStreamOf(nc);
    const filter = options.filterSubjects;
    let failures = 0;
    while (!stopping) {
      // Until the stream exists (its service creates it when it starts) and the consumer is made.
      try {
        if (durable) await ensureDurable(jsm);
        else await jsm.streams.info(stream);
        const consumer = durable
          ? await js.consumers.get(stream, durable)
          : await js.consumers.get(stream, {
              deliver_policy: options.deliverPolicy === "new" ? DeliverPolicy.New : DeliverPolicy.All,
              ...(filter?.length ? { filter_subjects: filter.length === 1 ? filter[0]! : [...filter] } : {}),
            });
        if (!durable) ephemeral = consumer;
        messages = await consumer.consume({ max_messages: options.batch ?? 100 });
      } catch (e) {
        failures++;
        if (isStreamNotFound(e)) {
          if (failures === 1) log("info", {}, `waiting for stream ${stream} (its service creates it when it starts)`);
        } else if (failures === 1 || failures % 20 === 0) {
          log("warn", { error: (e as Error).message, failures }, "cannot set up the consumer yet; retrying");
        }
        await sleep(Math.min(1000, backoffMs(failures)));
        continue;
      }
      failures = 0;
      if (stopping) break;
      void watch(messages, jsm);
      log("info", { filterSubjects: filter }, "consuming events");
      markReady();
      try {
        for await (const msg of messages) {
          // Pulled but not yet handled when stop() came: given back (delivered again to whoever
          // pulls next; at worst, after ack_wait).
          if (stopping) {
            if (durable) safely(() => msg.nak());
            continue;
          }
          await handleMessage(msg, durable !== undefined);
        }
      } catch (e) {
        if (!stopping) log("warn", { error: (e as Error).message }, "consuming was interrupted; starting again");
      }
    }
    await messages?.close().catch(() => {});
    // The server would remove it after a while without readers; a tail that ends tidies up now.
    await ephemeral?.delete().catch(() => {});
  }

  /** The durable consumer's configuration, as this code wants it. */
  function wantedConfig(): Partial<ConsumerConfig> {
    const filter = options.filterSubjects ?? [];
    return {
      durable_name: durable!,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: options.deliverPolicy === "new" ? DeliverPolicy.New : DeliverPolicy.All,
      ack_wait: nanos(options.ackWaitMs ?? 30_000),
      max_deliver: options.maxDeliver ?? -1,
      ...(filter.length === 1 ? { filter_subject: filter[0]! } : filter.length > 1 ? { filter_subjects: [...filter] } : {}),
    };
  }

  /** Creates the durable consumer, or updates what may be updated when it exists with other settings. */
  async function ensureDurable(jsm: JetStreamManager) {
    const wanted = wantedConfig();
    let current: ConsumerConfig | undefined;
    try {
      current = (await jsm.consumers.info(stream, durable!)).config;
    } catch (e) {
      if (!(e instanceof JetStreamApiError && e.code === JetStreamApiCodes.ConsumerNotFound)) throw e;
    }
    if (!current) {
      await jsm.consumers.add(stream, wanted);
      log("info", {}, "created the durable consumer");
      return;
    }
    const currentFilter = current.filter_subjects?.length ? current.filter_subjects : current.filter_subject ? [current.filter_subject] : [];
    const wantedFilter = options.filterSubjects ?? [];
    const filterDiffers = currentFilter.length !== wantedFilter.length || wantedFilter.some((s) => !currentFilter.includes(s));
    if (current.ack_wait !== wanted.ack_wait || current.max_deliver !== wanted.max_deliver || filterDiffers) {
      try {
        await jsm.consumers.update(stream, durable!, {
          ack_wait: wanted.ack_wait!,
          max_deliver: wanted.max_deliver!,
          ...(wantedFilter.length === 1
            ? { filter_subject: wantedFilter[0]! }
            : wantedFilter.length > 1
              ? { filter_subjects: [...wantedFilter] }
              : { filter_subject: "" }),
        });
        log("info", {}, "updated the durable consumer's settings");
      } catch (e) {
        log("warn", { error: (e as Error).message }, "the durable consumer exists with other settings that cannot be changed; keeping them");
      }
    }
  }

  /** Recreates a durable consumer that disappears (deleted by an operator, the stream recreated). */
  async function watch(m: ConsumerMessages, jsm: JetStreamManager) {
    try {
      for await (const s of m.status()) {
        if (s.type === "consumer_deleted" || s.type === "consumer_not_found" || s.type === "stream_not_found") {
          log("warn", { notification: s.type }, "the consumer or its stream is gone; recreating it");
          if (durable) await ensureDurable(jsm).catch((e: Error) => log("warn", { error: e.message }, "cannot recreate the consumer yet"));
        }
      }
    } catch {
      // the iterator ends with the consumer
    }
  }

  function redeliveryDelay(deliveryCount: number): number {
    const d = options.redeliveryDelayMs;
    if (typeof d === "number") return d;
    if (typeof d === "function") return d(deliveryCount);
    return Math.min(60_000, 1000 * 2 ** Math.max(0, deliveryCount - 1));
  }

  async function handleMessage(msg: JsMsg, acks: boolean) {
    const decoded = decodeEvent(msg.headers, msg.data);
    const where = { subject: msg.subject, streamSequence: msg.seq, eventId: msg.headers?.get("ce-id") || undefined };
    if (!decoded.ok || (options.inbox && !UUID.test(decoded.value.attributes.id))) {
      const error = decoded.ok ? `ce-id "${decoded.value.attributes.id}" is not a UUID` : decoded.error;
      log("error", { ...where, error }, "malformed event message; it is terminated, not handled");
      // No reason given to term(): servers before 2.10 ignore a "+TERM <reason>" and would deliver it again
      // after ack_wait, forever; the reason is in the log.
      if (acks) safely(() => msg.term());
      return;
    }
    const { attributes, data } = decoded.value;
    const event = {
      id: attributes.id,
      type: attributes.type,
      source: attributes.source,
      subject: attributes.subject,
      time: attributes.time,
      data,
      stream: msg.info.stream,
      streamSequence: msg.seq,
      redelivered: msg.redelivered,
      deliveryCount: msg.info.deliveryCount,
    } as ReceivedEvent;
    try {
      if (options.inbox) {
        const fresh = await handleOnce(options.inbox, event, options.handle);
        pruneInboxNow(options.inbox);
        if (!fresh) log("debug", { ...where, eventId: event.id }, "event already handled; acknowledging it again");
        await options.afterCommit?.(event);
      } else {
        await options.handle(event);
      }
      if (acks) safely(() => msg.ack());
    } catch (e) {
      const delay = redeliveryDelay(event.deliveryCount);
      log(
        "warn",
        { ...where, eventId: event.id, type: event.type, deliveryCount: event.deliveryCount, error: (e as Error).message, retryInMs: acks ? delay : undefined },
        acks ? "handling an event failed; it will be delivered again" : "handling an event failed",
      );
      if (acks) safely(() => msg.nak(delay));
    }
  }

  /** Prunes the inbox beside the handling, at most once a minute. */
  let lastPrune = Date.now();
  function pruneInboxNow(inbox: InboxOptions) {
    if (Date.now() - lastPrune < INBOX_PRUNE.everyMs) return;
    lastPrune = Date.now();
    pruneInbox(inbox.pool, inbox.consumer, inbox.retentionHours ?? INBOX_RETENTION_HOURS).catch((e: Error) =>
      log("warn", { error: e.message }, "could not prune the inbox; trying again later"),
    );
  }

  /** Records the event in the inbox and, if it is new there, handles it, in one transaction. Resolves to whether it was new. */
  function handleOnce(inbox: InboxOptions, event: ReceivedEvent, handle: (event: ReceivedEvent, tx: pg.PoolClient) => Promise<void>) {
    return inTransaction(inbox.pool, async (client) => {
      const { rowCount } = await client.query(
        "insert into event_inbox (consumer, event_id) values ($1, $2) on conflict do nothing",
        [inbox.consumer, event.id],
      );
      if (rowCount) await handle(event, client);
      return rowCount !== 0;
    });
  }

  function safely(f: () => void) {
    try {
      f();
    } catch (e) {
      // The connection is gone: the message is delivered again once it is back.
      log("warn", { error: (e as Error).message }, "cannot acknowledge a message; it will be delivered again");
    }
  }

  return {
    ready,
    stop: async () => {
      if (stopping) return running;
      stopping = true;
      wakeSleep?.();
      await messages?.close().catch(() => {});
      await running;
    },
  };
}
