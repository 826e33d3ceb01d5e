import { randomUUID } from "node:crypto";
import { inject } from "vitest";
import { ensureDatabase, externalPostgres } from "./postgres.ts";
import { TEST_DATABASE_PREFIX } from "./vitest-setup.ts";

/**
 * Creates an empty database of its own for a test file on the test
 * PostgreSQL server and returns its URL.
 */
export async function createTestDatabase(label: string): Promise<string> {
  const name = `${TEST_DATABASE_PREFIX}${label}_${randomUUID().slice(0, 8)}`.replace(/[^a-z0-9_]/g, "_");
  const url = externalPostgres(inject("postgresUrl")).url(name);
  await ensureDatabase(url);
  return url;
}
