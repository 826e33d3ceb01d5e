import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { Database } from "./database.ts";

const INT8_OID = 20;

/**
 * Opens a pooled Kysely connection to the orders database. bigint columns
 * (money in minor units) are read as numbers: the order rules keep every
 * amount within Number.MAX_SAFE_INTEGER.
 *
 * The pool survives the database going away (a restart, a failover, a
 * terminated backend): a connection that ends is dropped and replaced by a
 * new one when next needed, and `onConnectionLost` hears of each one lost
 * while idle in the pool.
 */
export function connectDatabase(
  url: string,
  poolSize = 10,
  onConnectionLost: (error: Error) => void = () => {},
): Kysely<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // A request waiting this long for a connection fails (503) rather than
    // hanging while the database is unreachable.
    connectionTimeoutMillis: 5_000,
    // TCP keep-alive finds a peer that vanished without closing (a failover
    // or a partition), which would otherwise hold a pooled connection forever.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // When a backend ends, its client emits 'error', and an 'error' event
  // nobody listens to ends the process. The pool re-emits it for an idle
  // client, which it then drops; a client in use has a query or a
  // transaction that fails with the same error (or "not queryable" on its
  // next statement), which is answered where it is handled, so the event
  // itself needs nothing more. The pool drops that client when it is released.
  pool.on("error", onConnectionLost);
  pool.on("connect", (client) => client.on("error", () => {}));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
