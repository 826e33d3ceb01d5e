import type { JetStreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { natsServerAvailable, natsSuiteName, startOwnNats, type OwnNats } from "../../../tools/nats.ts";
import { connectNats, jetStreamManagerOf, type NatsConnection } from "../src/nats.ts";
import { startRelay, type RelayStatus } from "../src/relay.ts";
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
} from "./fixtures.ts";

/**
 * The broker goes away for 30 seconds while the service keeps recording
 * events, then comes back with its store: nothing is lost, nothing is
 * doubled, each subject's events stay in order, and the relay's status
 * shows the lag growing and then gone. (A file of its own: it takes 40 s,
 * which the other files spend in parallel.)
 */
describe.skipIf(!natsServerAvailable())(natsSuiteName("relay through a NATS outage"), () => {
  let nats: OwnNats;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startOwnNats();
    nc = await connectNats({ url: nats.url, name: "outage test" });
    jsm = await jetStreamManagerOf(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.close();
  });

  test("NATS stopped for 30 s mid-load and restarted: every event arrives after, once, each subject in order", async () => {
    const { url, pool } = await outboxDatabase("relay_outage");
    const logger = captureLogger();
    const relay = startRelay({
      pool,
      listen: url,
      source: "/order-service",
      config: testConfig({ natsUrl: nats.url, publishTimeoutMs: 1000, pollIntervalMs: 200, lagWarnSeconds: 5, batchMax: 100 }),
      logger,
      lagCheckIntervalMs: 250,
    });
    const subjects = orderSubjects(30);
    let writing = true;
    let recorded = 0;
    const writer = (async () => {
      // Orders living their lives, one change every ~10 ms, all along.
      for (let i = 0; writing; i++) {
        const subject = subjects[i % subjects.length]!;
        const type = ORDER_LIFE[Math.floor(i / subjects.length) % ORDER_LIFE.length]!;
        await recordEvents(pool, [{ type, subject }]);
        recorded++;
        await sleep(10);
      }
    })();
    const samples: RelayStatus[] = [];
    try {
      await sleep(1500);
      await relay.drained(5000).catch(() => {}); // keeping up: nearly nothing waits
      expect((await relay.status()).connected).toBe(true);

      await nats.stop();
      const stoppedAt = Date.now();
      while (Date.now() - stoppedAt < 30_000) {
        await sleep(1000);
        samples.push(await relay.status());
      }
      // While away: not connected, the backlog and its age growing.
      expect(samples.slice(2).every((s) => !s.connected && s.publishing)).toBe(true);
      const lags = samples.map((s) => s.lagSeconds ?? 0);
      expect(lags.at(-1)).toBeGreaterThanOrEqual(27);
      for (let i = 3; i < lags.length; i++) expect(lags[i]!).toBeGreaterThan(lags[i - 1]!);
      expect(samples.at(-1)!.unpublished).toBeGreaterThan(samples[2]!.unpublished);
      expect(logger.entries.some((e) => e.level === "warn" && /events are behind/.test(e.msg ?? ""))).toBe(true);
      // Warned about at most once a minute, not on every check.
      expect(logger.entries.filter((e) => /events are behind/.test(e.msg ?? "")).length).toBe(1);

      await nats.start();
      await sleep(2000);
      writing = false;
      await writer;
      await relay.drained(30_000);
      await eventually(async () => (await relay.status()).connected, "the relay to be connected");
      expect(await relay.status()).toEqual({ publishing: true, connected: true, unpublished: 0, lagSeconds: null });
      await eventually(() => logger.entries.some((e) => e.msg === "events caught up"), "the recovery to be logged", 5000);

      const rows = await outboxRows(pool);
      expect(rows.length).toBe(recorded);
      expect(rows.length).toBeGreaterThan(1000);
      const messages = await readStream(nc, jsm, "ORDERS");
      expect(checkExactlyOnceInOrder(rows, messages)).toEqual({ missing: [], duplicated: [], outOfOrder: [] });
    } finally {
      writing = false;
      await writer;
      await relay.close();
      await pool.end();
    }
  }, 120_000);

  test("a broker that is down when the relay starts is waited for, not fatal", async () => {
    await nats.stop();
    const { url, pool } = await outboxDatabase("relay_late_broker");
    const relay = startRelay({
      pool,
      listen: url,
      source: "/inventory-service",
      config: testConfig({ natsUrl: nats.url, pollIntervalMs: 100 }),
      logger: captureLogger(),
    });
    try {
      const subjects = orderSubjects(5);
      await recordEvents(pool, subjects.map((subject) => ({ type: "inventory.v1.stock.reserved" as const, subject })));
      await sleep(1500);
      expect(await relay.status()).toMatchObject({ publishing: true, connected: false, unpublished: 5 });
      await nats.start();
      await relay.drained(15_000);
      const rows = await outboxRows(pool);
      expect(checkExactlyOnceInOrder(rows, await readStream(nc, jsm, "INVENTORY"))).toEqual({ missing: [], duplicated: [], outOfOrder: [] });
    } finally {
      await nats.start();
      await relay.close();
      await pool.end();
    }
  });
});
