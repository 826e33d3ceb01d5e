import type { JetStreamClient, JetStreamManager, PubAck } from "@nats-io/jetstream";
import pg from "pg";
import type { StreamName } from "./catalogue.ts";
import { encodeEvent, type EncodedEvent } from "./cloudevents.ts";
import type { EventsConfig } from "./config.ts";
import { connectNats, jetStreamManagerOf, jetStreamOf, type NatsConnection } from "./nats.ts";
import { outboxStatus, type Queryable } from "./outbox.ts";
import { ensureStreams } from "./streams.ts";
import { inTransaction } from "./transaction.ts";

/**
 * The relay: publishes what a service recorded in its outbox to NATS
 * JetStream, each event at least once and, thanks to JetStream's
 * deduplication by Nats-Msg-Id and the consumers' inbox, in effect once;
 * the events of one ce-subject in the order they were recorded, however
 * many replicas of the service run a relay.
 *
 * Each round claims, in one transaction, the oldest unpublished event of
 * each subject whose earlier events are all published (SELECT ... FOR
 * UPDATE SKIP LOCKED: another replica claims other rows, and no subject
 * ever has two events in flight), publishes them all at once with the
 * event id as Nats-Msg-Id, marks those JetStream acknowledged as published
 * and commits. A relay that dies between publishing and marking leaves the
 * rows unpublished: they are published again and JetStream drops the copy.
 *
 * It wakes on LISTEN outbox (a trigger notifies per recording statement),
 * and polls as a fallback. Without a broker (no NATS_URL) it only prunes.
 */

/** A pino-like logger: `logger.warn({ ... }, "message")`. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** An outbox row the relay claimed. */
export interface ClaimedEvent {
  position: string;
  id: string;
  type: string;
  subject: string;
  time: Date;
  data: unknown;
}

export interface RelayOptions {
  /** The service's database (the one holding its outbox). Its clients should have error listeners, as the services' pools do. */
  pool: pg.Pool;
  /** Connection of the dedicated LISTEN client: the same database, usually its URL. */
  listen: string | pg.ClientConfig;
  /** ce-source of every event: /order-service or /inventory-service. */
  source: string;
  config: EventsConfig;
  logger: Logger;
  /** The NATS client name (shown by the server); default "<source> relay". */
  natsName?: string;
  /** The streams to create or update when (re)connecting; default all of the catalogue's. */
  streams?: readonly StreamName[];
  /** How often to prune the outbox; default every minute. */
  pruneIntervalMs?: number;
  /** How often to compare the publishing lag with lagWarnSeconds; default every 5 s. */
  lagCheckIntervalMs?: number;
  /** Most rows one pruning statement deletes; default 1000. */
  pruneBatch?: number;
  /**
   * Called after a round's events were published (acknowledged by JetStream)
   * and before they are marked, with the transaction that claims them: a test
   * fails the relay exactly there (terminating that connection, say).
   */
  afterPublish?: (events: readonly ClaimedEvent[], claim: pg.PoolClient) => Promise<void>;
}

export interface RelayStatus {
  /** Whether this relay publishes (NATS_URL set). */
  publishing: boolean;
  /** Whether it is connected to NATS now. */
  connected: boolean;
  /** Events recorded and not yet published (counted up to 10,000). */
  unpublished: number;
  /** Age in seconds of the oldest unpublished event; null when there is none. */
  lagSeconds: number | null;
}

export interface Relay {
  /** Where publishing stands, for readiness and logs; rejects when the database cannot be read. */
  status(): Promise<RelayStatus>;
  /** Resolves once no recorded event is left unpublished; rejects after `timeoutMs` (default 30 s). */
  drained(timeoutMs?: number): Promise<void>;
  /** Prunes the outbox now (as the relay does every pruneIntervalMs); resolves to the number of rows deleted. */
  prune(): Promise<number>;
  /**
   * Stops: the round in progress finishes (its publishes are bounded by
   * publishTimeoutMs) and commits or rolls back, then the connections close.
   * The pool is the caller's and stays open.
   */
  close(): Promise<void>;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;
const LAG_WARN_EVERY_MS = 60_000;

/** The delay before retry number `failures` (1, 2, ...): 100 ms doubling up to 5 s. */
export function backoffMs(failures: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, failures - 1));
}

const CLAIM = `
  select position::text, id, type, subject, time, data
    from outbox o
   where published_at is null
     and not (position = any($2::bigint[]))
     and not exists (select 1 from outbox p
                      where p.published_at is null and p.subject = o.subject and p.position < o.position)
   order by position
   limit $1
   for update skip locked`;

/** A publish JetStream did not acknowledge (the events stay unpublished and are retried). */
class PublishError extends Error {
  constructor(failed: number, cause: unknown) {
    super(`${failed} publish${failed > 1 ? "es" : ""} failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "PublishError";
  }
}

export function startRelay(options: RelayOptions): Relay {
  const { pool, config, logger, source } = options;
  const publishing = config.natsUrl !== undefined;
  const log = (level: keyof Logger, obj: object, msg: string) => logger[level]({ component: "events-relay", ...obj }, msg);

  let closing = false;
  const abort = new AbortController();

  // Sleeping: the work loop sleeps until the poll interval passes or a notification
  // (or a reconnection) pokes it; back-off sleeps only end early when closing.
  const wakeable = new Set<() => void>();
  const all = new Set<() => void>();
  let poked = false;
  const poke = () => {
    poked = true;
    for (const wake of [...wakeable]) wake();
  };
  const sleep = (ms: number, canBePoked: boolean) =>
    new Promise<void>((resolve) => {
      if (closing) return resolve();
      const done = () => {
        clearTimeout(timer);
        wakeable.delete(done);
        all.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      all.add(done);
      if (canBePoked) wakeable.add(done);
    });

  // NATS: connected in the background (a broker that is down at start is waited for).
  let nc: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  let jsm: JetStreamManager | undefined;
  let connected = false;
  let streamsReady = false;
  const natsDone = publishing
    ? runNats().catch((e: Error) => log("error", { error: e.message }, "the NATS connection of the relay failed"))
    : Promise.resolve();

  async function runNats() {
    const url = config.natsUrl!;
    try {
      nc = await connectNats({ url, name: options.natsName ?? `${source} relay`, signal: abort.signal, timeoutMs: config.publishTimeoutMs });
    } catch (e) {
      if (!closing) log("error", { error: (e as Error).message }, "cannot connect to NATS; events stay in the outbox");
      return;
    }
    if (closing) {
      await nc.close().catch(() => {});
      return;
    }
    js = jetStreamOf(nc, config.publishTimeoutMs);
    jsm = await jetStreamManagerOf(nc, config.publishTimeoutMs);
    connected = true;
    log("info", { server: nc.getServer() }, "connected to NATS");
    poke();
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        connected = false;
        log("warn", { server: s.server }, "disconnected from NATS; events stay in the outbox until it is back");
      } else if (s.type === "reconnect") {
        connected = true;
        streamsReady = false;
        log("info", { server: s.server }, "reconnected to NATS");
        poke();
      }
    }
  }

  // LISTEN outbox on a dedicated connection, re-established whenever it is lost.
  const listener = publishing ? startListener() : undefined;

  function startListener() {
    let client: pg.Client | undefined;
    let failures = 0;
    let timer: NodeJS.Timeout | undefined;
    const connect = async () => {
      timer = undefined;
      if (closing) return;
      const c = new pg.Client(typeof options.listen === "string" ? { connectionString: options.listen, keepAlive: true } : { keepAlive: true, ...options.listen });
      const lost = (e?: Error) => {
        if (client !== c) return;
        client = undefined;
        c.end().catch(() => {});
        if (closing) return;
        failures++;
        log("warn", { error: e?.message ?? "connection ended" }, "lost the LISTEN connection; polling until it is back");
        timer = setTimeout(connect, backoffMs(failures));
      };
      c.on("error", lost);
      c.on("end", () => lost());
      c.on("notification", poke);
      client = c;
      try {
        await c.connect();
        await c.query("listen outbox");
        if (failures > 0) log("info", {}, "LISTEN connection back");
        failures = 0;
        // Whatever was recorded while it was away is found now.
        poke();
      } catch (e) {
        lost(e as Error);
      }
    };
    void connect();
    return {
      close: async () => {
        if (timer) clearTimeout(timer);
        const c = client;
        client = undefined;
        await c?.end().catch(() => {});
      },
    };
  }

  // The work loop.
  const poison = new Set<string>();
  const loopDone = publishing
    ? runLoop().catch((e: Error) => log("error", { error: e.message }, "the relay stopped on an unexpected error"))
    : Promise.resolve();

  async function runLoop() {
    let failures = 0;
    while (!closing) {
      if (!connected || !js || !jsm) {
        await sleep(config.pollIntervalMs, true);
        continue;
      }
      try {
        if (!streamsReady) {
          const result = await ensureStreams(jsm, options.streams);
          streamsReady = true;
          log("info", { streams: result }, "event streams ready");
        }
        poked = false;
        const claimed = await publishRound(js);
        if (failures > 0) log("info", { failures }, "publishing events again");
        failures = 0;
        // A round that claimed something may have left the next events of those subjects.
        if (claimed === 0 && !poked) await sleep(config.pollIntervalMs, true);
      } catch (e) {
        failures++;
        if (isNoStream(e)) streamsReady = false;
        const level = failures === 1 || failures % 20 === 0 ? "warn" : "debug";
        log(level, { error: (e as Error).message, failures, retryInMs: backoffMs(failures) }, "publishing events failed; retrying");
        await sleep(backoffMs(failures), false);
      }
    }
  }

  /** One round: claim, publish, mark, commit. Resolves to the number of events claimed. */
  async function publishRound(jetstream: JetStreamClient): Promise<number> {
    let publishFailure: { failed: number; cause: unknown } | undefined;
    const claimed = await inTransaction(pool, async (client) => {
      const { rows } = await client.query<ClaimedEvent>(CLAIM, [config.batchMax, [...poison]]);
      const ready: { event: ClaimedEvent; encoded: EncodedEvent }[] = [];
      for (const event of rows) {
        try {
          ready.push({ event, encoded: encodeEvent(event, { source, format: config.format }) });
        } catch (e) {
          // Left in the outbox (it is still listed) and skipped by this relay: the
          // events of its subject wait behind it until it is mended.
          poison.add(event.position);
          log("error", { eventId: event.id, type: event.type, error: (e as Error).message }, "an event cannot be encoded; it is not published");
        }
      }
      const results = await Promise.allSettled(
        ready.map(({ encoded }) =>
          jetstream.publish(encoded.subject, encoded.payload, {
            msgID: encoded.msgID,
            headers: encoded.headers,
            timeout: config.publishTimeoutMs,
          }),
        ),
      );
      const published = ready.filter((_, i) => results[i]!.status === "fulfilled").map((r) => r.event);
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed.length) publishFailure = { failed: failed.length, cause: failed[0]!.reason };
      const duplicates = results.filter((r) => r.status === "fulfilled" && (r as PromiseFulfilledResult<PubAck>).value.duplicate).length;
      if (duplicates) log("debug", { duplicates }, "JetStream already had some events (published before, not marked)");
      if (published.length && options.afterPublish) await options.afterPublish(published, client);
      if (published.length) {
        await client.query("update outbox set published_at = now() where position = any($1::bigint[])", [published.map((e) => e.position)]);
      }
      return rows.length;
    });
    if (publishFailure) throw new PublishError(publishFailure.failed, publishFailure.cause);
    return claimed;
  }

  // Pruning, on a timer.
  let pruning: Promise<number> | undefined;
  const prune = () => {
    pruning ??= pruneOutbox(pool, { retentionHours: config.retentionHours, publishing, batch: options.pruneBatch }).finally(() => {
      pruning = undefined;
    });
    return pruning;
  };
  const pruneTimer = setInterval(() => {
    prune().then(
      (deleted) => deleted && log("debug", { deleted }, "pruned the outbox"),
      (e: Error) => log("warn", { error: e.message }, "pruning the outbox failed; trying again later"),
    );
  }, options.pruneIntervalMs ?? 60_000);
  pruneTimer.unref();

  // Lag: warned about while the oldest unpublished event is older than lagWarnSeconds.
  let lagging = false;
  let lastLagWarning = 0;
  const lagTimer = publishing
    ? setInterval(() => {
        outboxStatus(pool).then(
          ({ unpublished, oldestUnpublishedAgeSeconds: lag }) => {
            if (lag !== null && lag > config.lagWarnSeconds) {
              if (!lagging || Date.now() - lastLagWarning >= LAG_WARN_EVERY_MS) {
                lastLagWarning = Date.now();
                log(
                  "warn",
                  { lagSeconds: Math.round(lag), unpublished, connected },
                  `events are behind: the oldest unpublished event is ${Math.round(lag)} s old`,
                );
              }
              lagging = true;
            } else if (lagging) {
              lagging = false;
              log("info", { lagSeconds: lag === null ? 0 : Math.round(lag), unpublished }, "events caught up");
            }
          },
          (e: Error) => log("debug", { error: e.message }, "cannot read the publishing lag"),
        );
      }, options.lagCheckIntervalMs ?? 5000)
    : undefined;
  lagTimer?.unref();

  log(
    "info",
    { publishing, format: config.format },
    publishing ? "relaying events to NATS" : "NATS_URL is not set: events are recorded but not published",
  );

  return {
    status: async () => {
      const s = await outboxStatus(pool);
      return { publishing, connected, unpublished: s.unpublished, lagSeconds: s.oldestUnpublishedAgeSeconds };
    },
    drained: async (timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const s = await outboxStatus(pool);
        if (s.unpublished === 0) return;
        if (Date.now() > deadline) throw new Error(`the outbox still holds ${s.unpublished} unpublished events after ${timeoutMs} ms`);
        poke();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    prune,
    close: async () => {
      if (closing) return;
      closing = true;
      abort.abort();
      for (const wake of [...all]) wake();
      clearInterval(pruneTimer);
      if (lagTimer) clearInterval(lagTimer);
      await loopDone;
      await pruning?.catch(() => {});
      await listener?.close();
      await nc?.close().catch(() => {});
      await natsDone.catch(() => {});
    },
  };
}

function isNoStream(e: unknown): boolean {
  const cause = e instanceof PublishError ? e.cause : e;
  return (cause as Error)?.name === "JetStreamNotEnabled";
}

/**
 * Deletes what the outbox no longer needs, a bounded number of rows per
 * statement: events published more than `retentionHours` ago and, with
 * publishing off (nothing would ever publish them), every event recorded
 * more than `retentionHours` ago. While publishing is on, an unpublished
 * event is never deleted, however old. Resolves to the rows deleted.
 */
export async function pruneOutbox(
  db: Queryable,
  options: { retentionHours: number; publishing: boolean; batch?: number | undefined },
): Promise<number> {
  const batch = options.batch ?? 1000;
  let total = 0;
  for (;;) {
    const { rows } = await db.query<{ n: number }>(
      `with gone as (
         delete from outbox where position in (
           select position from outbox where published_at < now() - $1::float8 * interval '1 hour'
            order by published_at limit $2)
         returning 1)
       select count(*)::int as n from gone`,
      [options.retentionHours, batch],
    );
    total += rows[0]!.n;
    if (rows[0]!.n < batch) break;
  }
  if (!options.publishing) {
    for (;;) {
      // The oldest unpublished rows by position, of which those recorded before the cutoff:
      // each statement reads at most `batch` rows however large the outbox is.
      const { rows } = await db.query<{ n: number }>(
        `with gone as (
           delete from outbox where position in (
             select position from (select position, time from outbox where published_at is null order by position limit $2) oldest
              where time < now() - $1::float8 * interval '1 hour')
           returning 1)
         select count(*)::int as n from gone`,
        [options.retentionHours, batch],
      );
      total += rows[0]!.n;
      if (rows[0]!.n === 0) break;
    }
  }
  return total;
}
