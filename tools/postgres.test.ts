import pg from "pg";
import { expect, test } from "vitest";
import { createTestDatabase } from "./testing.ts";

test("each test database is a real, empty PostgreSQL database of its own", async () => {
  const [a, b] = await Promise.all([createTestDatabase("a"), createTestDatabase("b")]);
  expect(a).not.toBe(b);
  const client = new pg.Client({ connectionString: a });
  await client.connect();
  const { rows } = await client.query("SELECT current_database() AS db, current_setting('synchronous_commit') AS sync");
  await client.end();
  expect(rows[0].db).toBe(new URL(a).pathname.slice(1));
  expect(rows[0].sync).toBe("on");
});
