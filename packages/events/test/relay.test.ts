import { randomUUID } from "node:crypto";
import type { JetStreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { natsServerAvailable, natsSuiteName, startOwnNats, type OwnNats } from "../../../tools/nats.ts";
import { EVENT_TYPES, type EventType } from "../src/catalogue.ts";
import { connectNats, jetStreamManagerOf, type NatsConnection } from "../src/nats.ts";
import { startRelay, type ClaimedEvent, type Relay } from "../src/relay.ts";
import {
  captureLogger,
  checkExactlyOnceInOrder,
  eventually,
  ORDER_LIFE,
  orderSubjects,
  outboxDatabase,
  outboxRows,
  readStream,
  recordEvents,
  sleep,
  testConfig,
  testPool,
} from "./fixtures.ts";

/**
 * The relay against a real PostgreSQL and a real NATS JetStream of this
 * file's own: what it publishes, in which order, how fast it wakes, and
 * what it does when it is killed halfway or its database connections are.
 */
describe.skipIf(!natsServerAvailable())(natsSuiteName("relay"), () => {
  let nats: OwnNats;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startOwnNats();
    nc = await connectNats({ url: nats.url, name: "relay test" });
    jsm = await jetStreamManagerOf(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.close();
  });

  async function streamsContent() {
    return [...(await readStream(nc, jsm, "ORDERS")), ...(await readStream(nc, jsm, "INVENTORY"))];
  }

  for (const format of ["protobuf", "json"] as const) {
    test(`publishes every event once into its stream and subject, as a CloudEvent in ${format}`, async () => {
      const { url, pool } = await outboxDatabase(`relay_${format}`);
      const logger = captureLogger();
      const relay = startRelay({ pool, listen: url, source: "/order-service", config: testConfig({ natsUrl: nats.url, format }), logger });
      try {
        const order = randomUUID();
        const product = randomUUID();
        const types = Object.keys(EVENT_TYPES) as EventType[];
        await recordEvents(
          pool,
          types.map((type) => ({ type, subject: type.includes("adjusted") || type.includes("low") ? product : order })),
        );
        await relay.drained();
        const rows = await outboxRows(pool);
        expect(rows.every((r) => r.published_at !== null)).toBe(true);
        const messages = (await streamsContent()).filter((m) => rows.some((r) => r.id === m.decoded.attributes.id));
        expect(messages).toHaveLength(types.length);
        for (const row of rows) {
          const m = messages.find((x) => x.decoded.attributes.id === row.id)!;
          expect(m.subject).toBe(row.type);
          expect(m.msgId).toBe(row.id);
          const schema = EVENT_TYPES[row.type as EventType];
          expect(m.headers).toMatchObject({
            "ce-specversion": "1.0",
            "ce-id": row.id,
            "ce-source": "/order-service",
            "ce-type": row.type,
            "ce-subject": row.subject,
            "ce-datacontenttype": format === "protobuf" ? "application/protobuf" : "application/json",
            "ce-dataschema": schema.typeName,
          });
          expect(m.headers["ce-time"]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
          expect(m.decoded.data.$typeName).toBe(schema.typeName);
        }
        const confirmed = messages.find((m) => m.subject === "orders.v1.order.confirmed")!.decoded;
        if (confirmed.type !== "orders.v1.order.confirmed") throw new Error("narrowing");
        expect(confirmed.data.order?.id).toBe(order);
        expect(confirmed.data.order?.totalMinor).toBeTypeOf("bigint");
        // Streams in the catalogue's form.
        const info = await jsm.streams.info("ORDERS");
        expect(info.config.duplicate_window).toBe(120 * 1e9);
        expect(info.config.storage).toBe("file");
        expect((await relay.status())).toEqual({ publishing: true, connected: true, unpublished: 0, lagSeconds: null });
      } finally {
        await relay.close();
        await pool.end();
      }
    });
  }

  test("keeps the order of each subject's events under concurrent recording transactions", async () => {
    const { url, pool } = await outboxDatabase("relay_order");
    const relay = startRelay({
      pool,
      listen: url,
      source: "/order-service",
      config: testConfig({ natsUrl: nats.url, batchMax: 50 }),
      logger: captureLogger(),
    });
    try {
      const subjects = orderSubjects(40);
      // 40 orders, each living its life three times over, from 20 concurrent writers.
      const work = subjects.flatMap((subject) => [0, 1, 2].flatMap(() => ORDER_LIFE.map((type) => ({ type, subject }))));
      const writers = Array.from({ length: 20 }, async (_, w) => {
        for (let i = w; i < work.length; i += 20) await recordEvents(pool, [work[i]!]);
      });
      await Promise.all(writers);
      await relay.drained();
      const rows = await outboxRows(pool);
      expect(rows).toHaveLength(work.length);
      const result = checkExactlyOnceInOrder(rows, await streamsContent());
      expect(result).toEqual({ missing: [], duplicated: [], outOfOrder: [] });
    } finally {
      await relay.close();
      await pool.end();
    }
  });

  test("two relays on one database (replicas) publish each event once, each subject in order", async () => {
    const { url, pool } = await outboxDatabase("relay_replicas");
    const published = new Map<string, number>();
    const count = (events: readonly ClaimedEvent[]) => {
      for (const e of events) published.set(e.id, (published.get(e.id) ?? 0) + 1);
      return Promise.resolve();
    };
    const relays: Relay[] = [1, 2].map((n) =>
      startRelay({
        pool: testPool(url),
        listen: url,
        source: "/order-service",
        config: testConfig({ natsUrl: nats.url, batchMax: 7 }),
        logger: captureLogger(),
        natsName: `replica ${n}`,
        afterPublish: count,
      }),
    );
    try {
      const subjects = orderSubjects(30);
      const work = subjects.flatMap((subject) => [0, 1].flatMap(() => ORDER_LIFE.map((type) => ({ type, subject }))));
      await Promise.all(
        Array.from({ length: 10 }, async (_, w) => {
          for (let i = w; i < work.length; i += 10) await recordEvents(pool, [work[i]!]);
        }),
      );
      await relays[0]!.drained();
      const rows = await outboxRows(pool);
      expect(rows).toHaveLength(work.length);
      // Each event went out once, from one replica or the other.
      expect([...published.values()].every((n) => n === 1)).toBe(true);
      expect(published.size).toBe(rows.length);
      expect(checkExactlyOnceInOrder(rows, await streamsContent())).toEqual({ missing: [], duplicated: [], outOfOrder: [] });
    } finally {
      await Promise.all(relays.map((r) => r.close()));
      await pool.end();
    }
  });

  test("LISTEN wakes the relay at once, also after its LISTEN connection was killed", async () => {
    const { url, pool } = await outboxDatabase("relay_listen");
    const logger = captureLogger();
    const relay = startRelay({
      pool,
      listen: url,
      source: "/order-service",
      config: testConfig({ natsUrl: nats.url, pollIntervalMs: 60_000 }),
      logger,
    });
    const latency = async () => {
      const subject = randomUUID();
      const started = Date.now();
      await recordEvents(pool, [{ type: "orders.v1.order.placed", subject }]);
      await eventually(
        async () => (await pool.query("select 1 from outbox where subject = $1 and published_at is not null", [subject])).rowCount,
        "the event to be published",
        10_000,
      );
      return Date.now() - started;
    };
    try {
      await relay.drained(); // connected, streams made, first poll done
      await sleep(200);
      const first = await latency();
      expect(first).toBeLessThan(1000);
      // Kill the LISTEN connection: it comes back and wakes the relay again.
      await pool.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'listen outbox%'",
      );
      await eventually(() => logger.entries.some((e) => e.msg === "LISTEN connection back"), "the LISTEN connection to come back");
      await sleep(200);
      const second = await latency();
      expect(second).toBeLessThan(1000);
    } finally {
      await relay.close();
      await pool.end();
    }
  });

  test("a relay failing between publishing and marking loses nothing, and the stream holds each event once", async () => {
    const { url, pool } = await outboxDatabase("relay_mark");
    const admin = testPool(url, 2);
    let failures = 0;
    const logger = captureLogger();
    const relay = startRelay({
      pool,
      listen: url,
      source: "/order-service",
      config: testConfig({ natsUrl: nats.url, batchMax: 20 }),
      logger,
      // Three times, right after JetStream acknowledged a round and before the rows are
      // marked, the claiming connection is terminated by the server: a real failure.
      afterPublish: async (_events, claim) => {
        if (failures >= 3) return;
        failures++;
        const { rows } = await claim.query<{ pid: number }>("select pg_backend_pid() as pid");
        await admin.query("select pg_terminate_backend($1)", [rows[0]!.pid]);
      },
    });
    try {
      const subjects = orderSubjects(25);
      for (const type of ORDER_LIFE) await recordEvents(pool, subjects.map((subject) => ({ type, subject })));
      await relay.drained();
      expect(failures).toBe(3);
      expect(logger.entries.some((e) => e.msg === "publishing events failed; retrying")).toBe(true);
      const rows = await outboxRows(pool);
      expect(rows).toHaveLength(75);
      expect(checkExactlyOnceInOrder(rows, await streamsContent())).toEqual({ missing: [], duplicated: [], outOfOrder: [] });
    } finally {
      await relay.close();
      await admin.end();
      await pool.end();
    }
  });

  test("survives its database connections being killed under it, and resumes", async () => {
    const { url, pool } = await outboxDatabase("relay_pgkill");
    const admin = testPool(url, 2, "test-writer");
    const logger = captureLogger();
    const relay = startRelay({
      pool,
      listen: url,
      source: "/inventory-service",
      config: testConfig({ natsUrl: nats.url, batchMax: 10, pollIntervalMs: 100 }),
      logger,
    });
    try {
      const subjects = orderSubjects(20);
      let writing = true;
      const writer = (async () => {
        let i = 0;
        while (writing) {
          await recordEvents(admin, [{ type: "inventory.v1.stock.reserved", subject: subjects[i++ % subjects.length]! }]);
          await sleep(5);
        }
      })();
      for (let round = 0; round < 5; round++) {
        await sleep(150);
        // Every backend of the relay's (its pool and its LISTEN connection), not the writer's.
        await admin.query(
          `select pg_terminate_backend(pid) from pg_stat_activity
            where datname = current_database() and application_name <> 'test-writer'`,
        );
      }
      writing = false;
      await writer;
      await relay.drained();
      const rows = await outboxRows(pool);
      expect(rows.length).toBeGreaterThan(20);
      expect(checkExactlyOnceInOrder(rows, await streamsContent())).toEqual({ missing: [], duplicated: [], outOfOrder: [] });
      expect((await relay.status()).unpublished).toBe(0);
      expect(logger.entries.filter((e) => e.msg === "lost the LISTEN connection; polling until it is back").length).toBeGreaterThanOrEqual(5);
    } finally {
      await relay.close();
      await admin.end();
      await pool.end();
    }
  });
});
