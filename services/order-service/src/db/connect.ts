import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { Database } from "./database.ts";

const INT8_OID = 20;

/**
 * Opens a pooled Kysely connection to the orders database. bigint columns
 * (money in minor units) are read as numbers: the order rules keep every
 * amount within Number.MAX_SAFE_INTEGER.
 */
export function connectDatabase(url: string, poolSize = 10): Kysely<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // A request waiting this long for a connection fails (503) rather than
    // hanging while the database is unreachable.
    connectionTimeoutMillis: 5_000,
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle pooled connection that the server ends (a restart, an
  // administrator) is dropped by the pool; unheard, its error would crash
  // the process. The next query opens a fresh connection.
  pool.on("error", () => {});
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
