import { sql, type Kysely, type Transaction } from "kysely";
import type { Database, ReservationLineRow, ReservationRow, ReservationStatus } from "../db/database.ts";
import { inventoryErrors, type ShortLine } from "./errors.ts";
import { lockStock, moveStock, type Db, type Movement } from "./stock-levels.ts";

/** A product and how many units of it an order wants. */
export interface LineInput {
  productId: string;
  quantity: number;
}

/** An order's lines to reserve, as a request asks. */
export interface ReserveRequest {
  orderId: string;
  lines: LineInput[];
}

/**
 * Who changes stock, for the ledger's `actor`: the calling client's
 * identity. A batch serves many callers, so each of its items carries its own.
 */
export interface Acting {
  actor: string;
}

/** A reservation request and its caller. */
export interface ReserveInput extends ReserveRequest, Acting {}

/** A release request and its caller. */
export interface ReleaseInput extends Acting {
  orderId: string;
  reason: string;
}

/** A commit request and its caller. */
export interface CommitInput extends Acting {
  orderId: string;
}

/** Who the expiry sweeper's ledger rows name: nobody called, the clock did. */
export const SYSTEM_ACTOR = "system";

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
 * order's refusal never touches another.
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
  // reserve_orders() takes each order once. An order named again (a
  // client's retry racing its first call into the same batch) is decided
  // after the first, as the repeat it is, in a call of its own.
  const rounds: number[][] = [];
  const seen = new Map<string, number>();
  inputs.forEach((input, i) => {
    const round = seen.get(input.orderId) ?? 0;
    seen.set(input.orderId, round + 1);
    (rounds[round] ??= []).push(i);
  });
  const outcomes: ReserveOutcome[] = [];
  for (const round of rounds) {
    const decided = await reserveDistinct(db, round.map((i) => inputs[i]!), ttlSeconds, lockTimeoutMs);
    round.forEach((i, k) => (outcomes[i] = decided[k]!));
  }
  return outcomes;
}

/** {@link reserveOrders} for orders named once each. */
async function reserveDistinct(
  db: Db,
  inputs: readonly ReserveInput[],
  ttlSeconds: number,
  lockTimeoutMs: number,
): Promise<ReserveOutcome[]> {
  const decided = await decide(db, inputs, ttlSeconds, lockTimeoutMs);
  // An order "taken" by a twin call counted against the running
  // availability although the twin's reservation was already in the stock
  // figures: orders refused as short after it may have been refused wrongly.
  // Decide them again (nothing was written for them); this needs a twin
  // racing in another batch, so it is rare.
  const outcomes = decided.map((rows) => rows[0]?.outcome);
  if (outcomes.includes("taken") && outcomes.includes("short")) {
    const again = inputs.flatMap((input, i) => (outcomes[i] === "short" ? [i] : []));
    const redecided = await decide(db, again.map((i) => inputs[i]!), ttlSeconds, lockTimeoutMs);
    again.forEach((i, k) => (decided[i] = redecided[k]!));
  }
  return Promise.all(
    inputs.map((input, i) =>
      outcomeOf(db, input, decided[i]!).then(
        (value): ReserveOutcome => ({ status: "fulfilled", value }),
        (reason: unknown): ReserveOutcome => ({ status: "rejected", reason }),
      ),
    ),
  );
}

/** One reserve_orders() call: each input's lines of its answer, in input order. */
async function decide(db: Db, inputs: readonly ReserveInput[], ttlSeconds: number, lockTimeoutMs: number): Promise<DecidedLine[][]> {
  const lines = inputs.flatMap((input, i) => input.lines.map((l) => ({ order: i + 1, ...l })));
  const { rows } = await sql<DecidedLine>`
    SELECT * FROM reserve_orders(
      ${inputs.map((i) => i.orderId)}::uuid[], ${inputs.map((i) => i.actor)}::text[], ${lines.map((l) => l.order)}::int[],
      ${lines.map((l) => l.productId)}::uuid[], ${lines.map((l) => l.quantity)}::int[],
      ${ttlSeconds}::int, ${Math.ceil(lockTimeoutMs)}::int
    )
  `.execute(db);
  const byOrder = inputs.map((): DecidedLine[] => []);
  for (const row of rows) byOrder[row.order_index - 1]!.push(row);
  return byOrder;
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
function sameReservation(existing: ReservationRecord, input: ReserveRequest): ReservationRecord {
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
 * Gives orders' reserved stock back, each with its reason; one outcome per
 * input, in order. Each gets its reservation (already released or expired
 * ones unchanged), or undefined for an unknown order. A committed
 * reservation cannot be released: its goods have left. An order named
 * twice is released once; the second is answered as a repeat.
 */
export async function releaseOrders(
  db: Kysely<Database>,
  inputs: readonly ReleaseInput[],
  lockTimeoutMs: number,
): Promise<PromiseSettledResult<ReservationRecord | undefined>[]> {
  const ends = await endReservations(db, "released", inputs.map((i) => ({ orderId: i.orderId, note: i.reason, actor: i.actor })), lockTimeoutMs);
  return ends.map(({ reservation, endedNow }, i) =>
    settled(() => {
      if (!endedNow && reservation?.status === "committed") throw inventoryErrors.reservationClosed(inputs[i]!.orderId, reservation.status);
      return reservation;
    }),
  );
}

/**
 * Turns orders' reserved stock into sold stock; one outcome per order, in
 * order. Committing again returns the committed reservation; a released or
 * expired one cannot be committed, an unknown order is not found.
 */
export async function commitOrders(
  db: Kysely<Database>,
  inputs: readonly CommitInput[],
  lockTimeoutMs: number,
): Promise<PromiseSettledResult<ReservationRecord>[]> {
  const ends = await endReservations(db, "committed", inputs.map((i) => ({ ...i, note: "" })), lockTimeoutMs);
  return ends.map(({ reservation }, i) =>
    settled(() => {
      const { orderId } = inputs[i]!;
      if (reservation === undefined) throw inventoryErrors.reservationNotFound(orderId);
      if (reservation.status !== "committed") throw inventoryErrors.reservationClosed(orderId, reservation.status);
      return reservation;
    }),
  );
}

function settled<T>(answer: () => T): PromiseSettledResult<T> {
  try {
    return { status: "fulfilled", value: answer() };
  } catch (reason) {
    return { status: "rejected", reason };
  }
}

/**
 * Ends the live (reserved or confirmed) reservations of a batch of orders
 * in one transaction and settles their stock. Answers, per input, the
 * order's reservation as it is afterwards (undefined when it has none) and
 * whether this input ended it (the first input naming a live one).
 *
 * Locks the reservation rows first, in order id order, then their stock
 * rows in product id order: the order every writer takes them in, so a
 * racing batch, reservation or expiry of the same orders waits rather than
 * deadlocks, and then finds them no longer live. Set-based: the same few
 * statements whatever the batch's size. Waits for locks at most
 * `lockTimeoutMs` (0: no bound).
 */
async function endReservations(
  db: Kysely<Database>,
  ending: "released" | "committed",
  inputs: readonly (Acting & { orderId: string; note: string })[],
  lockTimeoutMs: number,
): Promise<{ reservation: ReservationRecord | undefined; endedNow: boolean }[]> {
  const orderIds = [...new Set(inputs.map((i) => i.orderId))].sort();
  const { reservations, ended } = await db.transaction().execute(async (tx) => {
    if (lockTimeoutMs > 0) await sql`SELECT set_config('lock_timeout', ${`${Math.ceil(lockTimeoutMs)}ms`}, true)`.execute(tx);
    const found = await tx.selectFrom("reservations").selectAll().where("order_id", "in", orderIds).orderBy("order_id").forUpdate().execute();
    const reservations = new Map(found.map((r): [string, ReservationRecord] => [r.order_id, { ...r, lines: [] }]));
    const live = found.filter((r) => (LIVE as readonly string[]).includes(r.status)).map((r) => r.order_id);
    if (found.length === 0) return { reservations, ended: new Set(live) };
    const lines = await tx
      .selectFrom("reservation_lines")
      .selectAll()
      .where("order_id", "in", [...reservations.keys()])
      .orderBy("order_id")
      .orderBy("product_id")
      .execute();
    for (const line of lines) reservations.get(line.order_id)!.lines.push(line);
    if (live.length > 0) {
      // An order named twice ends with the note and actor of its first input.
      const firsts = new Map(inputs.toReversed().map((i) => [i.orderId, i]));
      await settle(tx, live.flatMap((id) => reservations.get(id)!.lines), ending, (orderId) => firsts.get(orderId)!);
      const rows = await tx
        .updateTable("reservations")
        .set({ status: ending, expires_at: null, updated_at: sql<Date>`now()` })
        .where("order_id", "in", live)
        .returningAll()
        .execute();
      for (const r of rows) reservations.set(r.order_id, { ...r, lines: reservations.get(r.order_id)!.lines });
    }
    return { reservations, ended: new Set(live) };
  });
  return inputs.map(({ orderId }) => {
    const endedNow = ended.delete(orderId);
    return { reservation: reservations.get(orderId), endedNow };
  });
}

/** Gives back (or sells) the stock of ended reservations' lines, with ledger rows whose note and actor `ledgerOf` gives each order. */
async function settle(
  tx: Transaction<Database>,
  lines: readonly ReservationLineRow[],
  ending: Ending,
  ledgerOf: (orderId: string) => Pick<Movement, "note" | "actor">,
) {
  const { kind, sold } = ENDINGS[ending];
  await lockStock(tx, [...new Set(lines.map((l) => l.product_id))]);
  await moveStock(
    tx,
    lines.map((l) => {
      const { note, actor } = ledgerOf(l.order_id);
      return { productId: l.product_id, kind, onHandDelta: sold ? -l.quantity : 0, reservedDelta: -l.quantity, orderId: l.order_id, note, actor };
    }),
  );
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
    await settle(tx, lines, "expired", () => ({ note: "reservation expired", actor: SYSTEM_ACTOR }));
    return expired.length;
  });
}
