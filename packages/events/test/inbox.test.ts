import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "vitest";
import type pg from "pg";
import { createInbox, INBOX_RETENTION_HOURS, pruneInbox } from "../src/consumer.ts";
import { createTestDatabase } from "../../../tools/testing.ts";
import { testPool } from "./fixtures.ts";

// The inbox is bounded: entries older than the retention (longer than the
// streams keep a message, so no delivery the stream can still make is missed)
// are deleted, a bounded number per statement, for their own consumer only.

let pool: pg.Pool;

beforeAll(async () => {
  pool = testPool(await createTestDatabase("inbox"));
  await createInbox(pool);
});

afterAll(async () => {
  await pool?.end();
});

async function entry(consumer: string, ageHours: number) {
  await pool.query("insert into event_inbox (consumer, event_id, received_at) values ($1, $2, now() - make_interval(hours => $3))", [
    consumer,
    randomUUID(),
    ageHours,
  ]);
}

async function count(consumer: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>("select count(*)::int as n from event_inbox where consumer = $1", [consumer]);
  return rows[0]!.n;
}

test("the inbox forgets entries older than its retention, in bounded deletes, and only its own consumer's", async () => {
  expect(INBOX_RETENTION_HOURS).toBeGreaterThan(7 * 24);
  for (let i = 0; i < 5; i++) await entry("shipping", INBOX_RETENTION_HOURS + 1 + i);
  for (let i = 0; i < 3; i++) await entry("shipping", INBOX_RETENTION_HOURS - 1);
  await entry("billing", INBOX_RETENTION_HOURS + 10);

  expect(await pruneInbox(pool, "shipping", INBOX_RETENTION_HOURS, 2)).toBe(2);
  expect(await count("shipping")).toBe(6);
  expect(await pruneInbox(pool, "shipping", INBOX_RETENTION_HOURS)).toBe(3);
  expect(await pruneInbox(pool, "shipping", INBOX_RETENTION_HOURS)).toBe(0);
  expect(await count("shipping")).toBe(3);
  expect(await count("billing")).toBe(1);
});
