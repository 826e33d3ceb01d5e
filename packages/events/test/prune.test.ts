import { afterEach, describe, expect, test } from "vitest";
import { freePort } from "../../../tools/postgres.ts";
import { pruneOutbox, startRelay } from "../src/relay.ts";
import { captureLogger, eventually, outboxDatabase, sampleData, testConfig } from "./fixtures.ts";
import type pg from "pg";

/** The outbox keeps what may still be published or listed, and no more. No broker is needed. */
describe("pruning the outbox", () => {
  const pools: pg.Pool[] = [];
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.end()));
  });

  /** Rows recorded `ageHours` ago, published `publishedHoursAgo` ago (null: not published). */
  async function seed(pool: pg.Pool, label: string, n: number, ageHours: number, publishedHoursAgo: number | null) {
    await pool.query(
      `insert into outbox (type, subject, data, time, published_at)
       select 'orders.v1.order.placed', $1 || '-' || i, $2::jsonb,
              now() - $3::float8 * interval '1 hour',
              case when $4::float8 is null then null else now() - $4::float8 * interval '1 hour' end
         from generate_series(1, $5) i`,
      [label, JSON.stringify(sampleData("orders.v1.order.placed", label)), ageHours, publishedHoursAgo, n],
    );
  }
  const left = async (pool: pg.Pool) =>
    Object.fromEntries(
      (await pool.query<{ label: string; n: number }>("select split_part(subject, '-', 1) as label, count(*)::int as n from outbox group by 1")).rows.map(
        (r) => [r.label, r.n],
      ),
    );

  test("while publishing: published rows past the retention go, in bounded deletes; unpublished rows stay however old", async () => {
    const { pool } = await outboxDatabase("prune_on");
    pools.push(pool);
    await seed(pool, "oldpublished", 7, 3, 2);
    await seed(pool, "recentpublished", 3, 3, 0.5);
    await seed(pool, "oldunpublished", 4, 5, null);
    await seed(pool, "new", 2, 0, null);
    expect(await pruneOutbox(pool, { retentionHours: 1, publishing: true, batch: 2 })).toBe(7);
    expect(await left(pool)).toEqual({ recentpublished: 3, oldunpublished: 4, new: 2 });
    expect(await pruneOutbox(pool, { retentionHours: 1, publishing: true, batch: 2 })).toBe(0);
  });

  test("with publishing off: every row recorded before the retention goes, published or not", async () => {
    const { pool } = await outboxDatabase("prune_off");
    pools.push(pool);
    await seed(pool, "oldunpublished", 5, 2, null);
    await seed(pool, "oldpublished", 3, 2, 1.5);
    await seed(pool, "new", 4, 0.1, null);
    expect(await pruneOutbox(pool, { retentionHours: 1, publishing: false, batch: 2 })).toBe(8);
    expect(await left(pool)).toEqual({ new: 4 });
  });

  test("a relay without a broker prunes on its own, and says publishing is off", async () => {
    const { url, pool } = await outboxDatabase("prune_relay_off");
    pools.push(pool);
    await seed(pool, "old", 3, 100, null);
    await seed(pool, "new", 2, 1, null);
    const logger = captureLogger();
    const relay = startRelay({ pool, listen: url, source: "/order-service", config: testConfig({ retentionHours: 72 }), logger, pruneIntervalMs: 50 });
    try {
      await eventually(async () => (await left(pool)).old === undefined, "the old rows to be pruned", 5000);
      expect(await left(pool)).toEqual({ new: 2 });
      expect(await relay.status()).toMatchObject({ publishing: false, connected: false, unpublished: 2 });
      expect(logger.entries.some((e) => e.msg === "NATS_URL is not set: events are recorded but not published")).toBe(true);
    } finally {
      await relay.close();
    }
  });

  test("a relay whose broker is not there keeps every unpublished row, and closes without waiting for it", async () => {
    const { url, pool } = await outboxDatabase("prune_relay_away");
    pools.push(pool);
    await seed(pool, "oldunpublished", 3, 100, null);
    await seed(pool, "oldpublished", 2, 100, 99);
    const relay = startRelay({
      pool,
      listen: url,
      source: "/order-service",
      config: testConfig({ natsUrl: `nats://127.0.0.1:${await freePort()}`, retentionHours: 72 }),
      logger: captureLogger(),
    });
    try {
      expect(await relay.prune()).toBe(2);
      expect(await left(pool)).toEqual({ oldunpublished: 3 });
      const status = await relay.status();
      expect(status).toMatchObject({ publishing: true, connected: false, unpublished: 3 });
      expect(status.lagSeconds).toBeGreaterThan(99 * 3600);
    } finally {
      const started = Date.now();
      await relay.close();
      expect(Date.now() - started).toBeLessThan(4000);
    }
  });
});
