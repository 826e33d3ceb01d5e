import { Kysely, PostgresDialect, type ColumnType, type Generated, type Selectable } from "kysely";
import pg from "pg";
import type { Logger } from "pino";

/** Columns set by the database on insert and by the code on update. */
type Timestamp = ColumnType<Date, never, Date>;

export interface ProductsTable {
  id: Generated<string>;
  sku: string;
  name: string;
  description: string;
  /** int8: read as bigint (see the pool's type parser below). */
  price_minor: bigint;
  currency: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface StockLevelsTable {
  product_id: string;
  on_hand: number;
  reserved: number;
  /** stock.low is recorded when available stock falls below it; 0: never. */
  low_stock_threshold: Generated<number>;
  updated_at: Timestamp;
}

const RESERVATION_STATUSES = ["reserved", "confirmed", "released", "committed", "expired"] as const;
export type ReservationStatus = (typeof RESERVATION_STATUSES)[number];

export interface ReservationsTable {
  order_id: string;
  status: ReservationStatus;
  expires_at: Date | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ReservationLinesTable {
  order_id: string;
  product_id: string;
  quantity: number;
  unit_price_minor: bigint;
  currency: string;
}

const MOVEMENT_KINDS = [
  "initial",
  "restock",
  "write_off",
  "count_correction",
  "reserve",
  "release",
  "commit",
  "expire",
] as const;
export type MovementKind = (typeof MOVEMENT_KINDS)[number];

export interface StockMovementsTable {
  id: Generated<bigint>;
  product_id: string;
  kind: MovementKind;
  on_hand_delta: number;
  reserved_delta: number;
  order_id: string | null;
  note: string;
  actor: string;
  created_at: Timestamp;
}

/**
 * The events recorded with the changes they describe (migration 0004,
 * written by triggers only); read with the events package's listEvents().
 */
export interface OutboxTable {
  position: ColumnType<bigint, never, never>;
  id: Generated<string>;
  /** xid8, as text. */
  txid: ColumnType<string, never, never>;
  type: string;
  subject: string;
  /** The event message in the proto3 JSON mapping. */
  data: Record<string, unknown>;
  time: Generated<Date>;
  published_at: Date | null;
}

/** The inventory database as Kysely sees it. */
export interface Database {
  products: ProductsTable;
  stock_levels: StockLevelsTable;
  reservations: ReservationsTable;
  reservation_lines: ReservationLinesTable;
  stock_movements: StockMovementsTable;
  outbox: OutboxTable;
}

export type ProductRow = Selectable<ProductsTable>;
export type StockLevelRow = Selectable<StockLevelsTable>;
export type ReservationRow = Selectable<ReservationsTable>;
export type ReservationLineRow = Selectable<ReservationLinesTable>;
export type StockMovementRow = Selectable<StockMovementsTable>;

const INT8_OID = 20;

/**
 * Opens a pool of `poolSize` connections to `url`. int8 columns (prices,
 * ledger ids, counts) come back as `bigint` rather than pg's default string;
 * the parser is set on this pool only, so other pools in the process keep
 * their own mapping.
 */
export function createDatabase(options: { url: string; poolSize?: number; logger?: Logger }): Kysely<Database> {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 20,
    // A call waiting this long for a connection fails as UNAVAILABLE rather
    // than hanging while the database is unreachable.
    connectionTimeoutMillis: 10_000,
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8_OID && format !== "binary" ? BigInt : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // A connection dies when the database restarts, fails over or has its
  // backend terminated. node-postgres then emits 'error' on the client, and
  // an 'error' event nobody listens to ends the process. The pool passes the
  // error of a client idle in it on as its own 'error' (and replaces the
  // client); the listener added on 'connect' covers a client that is
  // checked out (a statement running, a transaction open). The call using
  // it fails on its own (UNAVAILABLE, see errors.ts) and the pool drops the
  // broken client when it is released.
  pool.on("error", () => {
    // Logged by the client's listener below, which sees it too.
  });
  pool.on("connect", (client) => {
    client.on("error", (err) => options.logger?.warn({ error: err.message }, "database connection lost"));
  });
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
