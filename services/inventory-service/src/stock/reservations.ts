import { sql, type Kysely, type Transaction } from "kysely";
import type { Database, ReservationLineRow, ReservationRow, ReservationStatus } from "../db/database.ts";
import { inventoryErrors, type ShortLine } from "./errors.ts";
import { lockStock, moveStock, type Db, type Movement } from "./stock-levels.ts";

/** A product and how many units of it an order wants. */
export interface LineInput {
  productId: string;
  quantity: number;
}

export interface ReserveInput {
  orderId: string;
  lines: LineInput[];
}

/** A reservation with its lines, ordered by product id. */
export interface ReservationRecord extends ReservationRow {
  lines: ReservationLineRow[];
}

/** The ways a live reservation ends, and what each does to its stock. */
const ENDINGS = {
  released: { kind: "release", sold: false },
  committed: { kind: "commit", sold: true },
  expired: { kind: "expire", sold: false },
} as const;
type Ending = keyof typeof ENDINGS;

const LIVE = ["reserved", "confirmed"] as const;

/** What became of one order of a batch: its reservation, or why it has none. */
export type ReserveOutcome = PromiseSettledResult<ReservationRecord>;

/** One line of reserve_orders()'s answer (see migration 0003). */
interface DecidedLine {
  order_index: number;
  outcome: "reserved" | "existing" | "unknown" | "short" | "taken";
  status: ReservationStatus | null;
  expires_at: Date | null;
  created_at: Date | null;
  updated_at: Date | null;
  product_id: string;
  quantity: number;
  available: number | null;
  unit_price_minor: bigint | null;
  currency: string | null;
}

/**
 * Reserves stock for a batch of orders, each all of its lines or none,
 * holding it until `ttlSeconds` from now unless confirmed, and answers each
 * order with its own outcome, in order. Idempotent on the order id: a repeat
 * with the same lines gets the reservation as it is. Orders are decided in
 * the order given, each against the stock the ones before it left, and one
 * order's refusal never touches another. The order ids must be distinct.
 *
 * This is the hot path of every order, so the whole batch is one call of
 * the reserve_orders() database function (migration 0003): one round trip
 * and one commit, whatever its size. It waits for locks at most
 * `lockTimeoutMs` (0: no bound), the time its callers have left.
 */
export async function reserveOrders(
  db: Db,
  inputs: readonly ReserveInput[],
  ttlSeconds: number,
  lockTimeoutMs: number,
): Promise<ReserveOutcome[]> {
  if (inputs.length === 0) return [];
  const lines = inputs.flatMap((input, i) => input.lines.map((l) => ({ order: i + 1, ...l })));
  const { rows } = await sql<DecidedLine>`
    SELECT * FROM reserve_orders(
      ${inputs.map((i) => i.orderId)}::uuid[], ${lines.map((l) => l.order)}::int[],
      ${lines.map((l) => l.productId)}::uuid[], ${lines.map((l) => l.quantity)}::int[],
      ${ttlSeconds}::int, ${Math.ceil(lockTimeoutMs)}::int
    )
  `.execute(db);
  const byOrder = inputs.map((): DecidedLine[] => []);
  for (const row of rows) byOrder[row.order_index - 1]!.push(row);
  return Promise.all(
    inputs.map((input, i) =>
      outcomeOf(db, input, byOrder[i]!).then(
        (value): ReserveOutcome => ({ status: "fulfilled", value }),
        (reason: unknown): ReserveOutcome => ({ status: "rejected", reason }),
      ),
    ),
  );
}

/** One order's reservation from its lines of reserve_orders()'s answer, or the refusal they mean. */
async function outcomeOf(db: Db, input: ReserveInput, rows: readonly DecidedLine[]): Promise<ReservationRecord> {
  const first = rows[0];
  if (first === undefined) throw new Error(`reserve_orders() said nothing about order ${input.orderId}`);
  switch (first.outcome) {
    case "reserved":
    case "existing": {
      const reservation: ReservationRecord = {
        order_id: input.orderId,
        status: first.status!,
        expires_at: first.expires_at,
        created_at: first.created_at!,
        updated_at: first.updated_at!,
        lines: rows.map((l) => ({
          order_id: input.orderId,
          product_id: l.product_id,
          quantity: l.quantity,
          unit_price_minor: l.unit_price_minor!,
          currency: l.currency!,
        })),
      };
      return first.outcome === "reserved" ? reservation : sameReservation(reservation, input);
    }
    case "unknown":
    case "short": {
      // Named in the order of the request, as the client wrote them.
      const seen = new Map(rows.map((l) => [l.product_id, l.available]));
      const unknown = input.lines.filter((l) => seen.get(l.productId) === null).map((l) => l.productId);
      if (unknown.length > 0) throw inventoryErrors.productNotFound(unknown);
      const short: ShortLine[] = input.lines.flatMap(({ productId, quantity }) => {
        const available = seen.get(productId) ?? 0;
        return available < quantity ? [{ productId, requested: quantity, available }] : [];
      });
      throw inventoryErrors.insufficientStock(short);
    }
    case "taken": {
      // A twin call committed a reservation for this order while the batch
      // waited for its locks: answer from it.
      const existing = await findReservation(db, input.orderId);
      if (existing) return sameReservation(existing, input);
      // Only a reservation that vanished in between could do this.
      throw new Error(`reservation for order ${input.orderId} was neither made nor found`);
    }
  }
}

/** The answer to a ReserveStock for an order that already has a reservation. */
function sameReservation(existing: ReservationRecord, input: ReserveInput): ReservationRecord {
  const wanted = new Map(input.lines.map((l) => [l.productId, l.quantity]));
  const same =
    existing.lines.length === wanted.size && existing.lines.every((l) => wanted.get(l.product_id) === l.quantity);
  if (!same) throw inventoryErrors.reservationConflict(input.orderId);
  if (existing.status === "released" || existing.status === "expired") {
    throw inventoryErrors.reservationClosed(input.orderId, existing.status);
  }
  return existing;
}

/** The reservation of an order with its lines, or undefined when it has none. */
async function findReservation(db: Db, orderId: string): Promise<ReservationRecord | undefined> {
  const reservation = await db.selectFrom("reservations").selectAll().where("order_id", "=", orderId).executeTakeFirst();
  if (reservation === undefined) return undefined;
  return { ...reservation, lines: await linesOf(db, orderId) };
}

/** The lines of an order's reservation, ordered by product id. */
function linesOf(db: Db, orderId: string): Promise<ReservationLineRow[]> {
  return db.selectFrom("reservation_lines").selectAll().where("order_id", "=", orderId).orderBy("product_id").execute();
}

/**
 * Gives an order's reserved stock back. Returns the reservation (already
 * released or expired ones unchanged), or undefined for an unknown order.
 * A committed reservation cannot be released: its goods have left.
 */
export async function releaseStock(db: Kysely<Database>, orderId: string, reason: string): Promise<ReservationRecord | undefined> {
  return db.transaction().execute(async (tx) => {
    const released = await endReservation(tx, orderId, "released", reason);
    if (released) return released;
    const current = await findReservation(tx, orderId);
    if (current?.status === "committed") throw inventoryErrors.reservationClosed(orderId, current.status);
    return current;
  });
}

/**
 * Turns an order's reserved stock into sold stock. Committing again returns
 * the committed reservation; a released or expired one cannot be committed.
 */
export async function commitStock(db: Kysely<Database>, orderId: string): Promise<ReservationRecord> {
  return db.transaction().execute(async (tx) => {
    const committed = await endReservation(tx, orderId, "committed", "");
    if (committed) return committed;
    const current = await findReservation(tx, orderId);
    if (current === undefined) throw inventoryErrors.reservationNotFound(orderId);
    if (current.status !== "committed") throw inventoryErrors.reservationClosed(orderId, current.status);
    return current;
  });
}

/**
 * Ends a live (reserved or confirmed) reservation and settles its stock, or
 * returns undefined when the order has no live reservation. The status
 * update locks the reservation row, so a racing release, commit or expiry
 * of the same order waits and then finds it no longer live.
 */
async function endReservation(
  tx: Transaction<Database>,
  orderId: string,
  ending: "released" | "committed",
  note: string,
): Promise<ReservationRecord | undefined> {
  const reservation = await tx
    .updateTable("reservations")
    .set({ status: ending, expires_at: null, updated_at: sql<Date>`now()` })
    .where("order_id", "=", orderId)
    .where("status", "in", LIVE)
    .returningAll()
    .executeTakeFirst();
  if (reservation === undefined) return undefined;
  const lines = await linesOf(tx, orderId);
  await settle(tx, lines, ending, note);
  return { ...reservation, lines };
}

/** Gives back (or sells) the stock of ended reservations' lines, with ledger rows. */
async function settle(tx: Transaction<Database>, lines: readonly ReservationLineRow[], ending: Ending, note: string) {
  const { kind, sold } = ENDINGS[ending];
  await lockStock(tx, [...new Set(lines.map((l) => l.product_id))]);
  await moveStock(
    tx,
    lines.map((l) => movement(l, kind, { onHandDelta: sold ? -l.quantity : 0, reservedDelta: -l.quantity }, note)),
  );
}

function movement(
  line: ReservationLineRow,
  kind: Movement["kind"],
  deltas: Pick<Movement, "onHandDelta" | "reservedDelta">,
  note: string,
): Movement {
  return { productId: line.product_id, kind, ...deltas, orderId: line.order_id, note, actor: "" };
}

/**
 * Marks reserved orders as confirmed so they no longer expire. Returns the
 * orders confirmed now or before, and those with no live reservation.
 */
export async function confirmReservations(
  db: Db,
  orderIds: readonly string[],
): Promise<{ confirmed: string[]; missing: string[] }> {
  if (orderIds.length === 0) return { confirmed: [], missing: [] };
  // The second SELECT sees the table as it was before the update, so a
  // reservation confirmed by this statement is counted once.
  const rows = await db
    .with("updated", (qb) =>
      qb
        .updateTable("reservations")
        .set({ status: "confirmed", expires_at: null, updated_at: sql<Date>`now()` })
        .where("order_id", "in", orderIds)
        .where("status", "=", "reserved")
        .returning("order_id"),
    )
    .selectFrom("updated")
    .select("order_id")
    .unionAll(
      db.selectFrom("reservations").select("order_id").where("order_id", "in", orderIds).where("status", "=", "confirmed"),
    )
    .execute();
  const confirmed = new Set(rows.map((r) => r.order_id));
  return {
    confirmed: orderIds.filter((id) => confirmed.has(id)),
    missing: orderIds.filter((id) => !confirmed.has(id)),
  };
}

/**
 * Expires up to `batchSize` reserved orders past their expiry time and gives
 * their stock back; returns how many. Rows another sweeper (or a release or
 * commit) holds are skipped, so replicas can sweep side by side.
 */
export async function expireReservations(db: Kysely<Database>, batchSize: number): Promise<number> {
  return db.transaction().execute(async (tx) => {
    const expired = await tx
      .updateTable("reservations")
      .set({ status: "expired", updated_at: sql<Date>`now()` })
      .where("order_id", "in", (eb) =>
        eb
          .selectFrom("reservations")
          .select("order_id")
          .where("status", "=", "reserved")
          .where("expires_at", "<=", sql<Date>`now()`)
          .orderBy("expires_at")
          .limit(batchSize)
          .forUpdate()
          .skipLocked(),
      )
      .returning("order_id")
      .execute();
    if (expired.length === 0) return 0;
    const lines = await tx
      .selectFrom("reservation_lines")
      .selectAll()
      .where(
        "order_id",
        "in",
        expired.map((r) => r.order_id),
      )
      .execute();
    await settle(tx, lines, "expired", "reservation expired");
    return expired.length;
  });
}
