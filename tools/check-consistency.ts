/**
 * Compares the orders database with the inventory database and reports
 * every way they disagree:
 *
 *  (a) a confirmed order without a live (reserved or confirmed) reservation
 *      holding exactly its lines;
 *  (b) a live reservation whose order is missing, or neither pending nor
 *      confirmed;
 *  (c) a fulfilled order whose reservation is not committed;
 *  (d) a stock level whose `reserved` differs from the sum of its live
 *      reservation lines.
 *
 * An order whose stock action inventory has not acknowledged yet
 * (`stock_synced_at` null, pending orders included) is in progress: the
 * order service is still converging it, so it is never a finding, only a
 * warning once it has been in progress for more than a minute.
 *
 * The two databases cannot be read in one snapshot. Reading inventory's live
 * reservations before the orders makes a disagreement unlikely to be an
 * artefact of the moment; to be sure, a check that finds something looks
 * again and reports only what it found both times.
 *
 * Run it with `make check-consistency`. ORDERS_DATABASE_URL and
 * INVENTORY_DATABASE_URL name the databases; by default the development
 * databases (`orders` and `inventory` on the embedded PostgreSQL of
 * `make dev`). Exits 1 when there is a finding, 2 when it cannot check.
 */
import pg from "pg";
import { devPostgres } from "./postgres.ts";

/** A disagreement between the databases. */
export interface Finding {
  check: "confirmed_without_reservation" | "reservation_without_live_order" | "fulfilled_not_committed" | "reserved_mismatch";
  /** The order or product concerned. */
  subject: string;
  /** What is wrong, in a sentence. */
  detail: string;
}

/** An order still converging for longer than it should. */
export interface Warning {
  orderId: string;
  detail: string;
}

/** What a check found and how much it looked at. */
export interface ConsistencyReport {
  findings: Finding[];
  warnings: Warning[];
  /** Orders whose stock action is not acknowledged yet (warned about or not). */
  inProgress: number;
  checked: { orders: number; liveReservations: number; stockLevels: number };
}

export interface CheckOptions {
  ordersUrl: string;
  inventoryUrl: string;
  /** An order in progress for longer than this is warned about (default one minute). */
  warnAfterMs?: number;
  /** Pause before looking again at findings (default 500 ms). */
  recheckAfterMs?: number;
}

interface Line {
  product_id: string;
  quantity: number;
}

interface OrderRow {
  id: string;
  status: string;
  in_progress: boolean;
  stale: boolean;
  updated_at: Date;
  items: Line[];
}

const LIVE = ["reserved", "confirmed"];

/** Checks the two databases once, and again for confirmation when it finds something. */
export async function checkConsistency(options: CheckOptions): Promise<ConsistencyReport> {
  const orders = new pg.Client({ connectionString: options.ordersUrl });
  const inventory = new pg.Client({ connectionString: options.inventoryUrl });
  await Promise.all([orders.connect(), inventory.connect()]);
  try {
    const first = await compare(orders, inventory, options.warnAfterMs ?? 60_000);
    if (first.findings.length === 0) return first;
    await new Promise((resolve) => setTimeout(resolve, options.recheckAfterMs ?? 500));
    const second = await compare(orders, inventory, options.warnAfterMs ?? 60_000);
    const seen = new Set(first.findings.map(identity));
    return { ...second, findings: second.findings.filter((f) => seen.has(identity(f))) };
  } finally {
    await Promise.all([orders.end(), inventory.end()]);
  }
}

const identity = (f: Finding) => `${f.check} ${f.subject} ${f.detail}`;

async function compare(orders: pg.Client, inventory: pg.Client, warnAfterMs: number): Promise<ConsistencyReport> {
  // Inventory first: a reservation exists only after its order was stored.
  const { live, mismatches, stockLevels } = await snapshot(inventory, async (tx) => ({
    live: (
      await tx.query<{ order_id: string; status: string; lines: Line[] }>(
        `SELECT r.order_id, r.status,
                json_agg(json_build_object('product_id', l.product_id, 'quantity', l.quantity) ORDER BY l.product_id) AS lines
           FROM reservations r JOIN reservation_lines l USING (order_id)
          WHERE r.status = ANY($1)
          GROUP BY r.order_id, r.status`,
        [LIVE],
      )
    ).rows,
    mismatches: (
      await tx.query<{ product_id: string; reserved: number; held: number }>(
        `SELECT s.product_id, s.reserved, coalesce(sum(l.quantity), 0)::int AS held
           FROM stock_levels s
           LEFT JOIN reservation_lines l
             ON l.product_id = s.product_id
            AND l.order_id IN (SELECT order_id FROM reservations WHERE status = ANY($1))
          GROUP BY s.product_id, s.reserved
         HAVING s.reserved <> coalesce(sum(l.quantity), 0)`,
        [LIVE],
      )
    ).rows,
    stockLevels: Number((await tx.query<{ n: string }>("SELECT count(*) AS n FROM stock_levels")).rows[0]?.n ?? 0),
  }));

  const relevant = await snapshot(orders, async (tx) =>
    (
      await tx.query<OrderRow>(
        `SELECT o.id, o.status, o.updated_at,
                o.stock_synced_at IS NULL AS in_progress,
                o.updated_at < now() - make_interval(secs => $2::float8 / 1000) AS stale,
                coalesce((SELECT json_agg(json_build_object('product_id', i.product_id, 'quantity', i.quantity) ORDER BY i.product_id)
                            FROM order_items i WHERE i.order_id = o.id), '[]') AS items
           FROM orders o
          WHERE o.status IN ('confirmed', 'fulfilled')
             OR o.stock_synced_at IS NULL
             OR o.id = ANY($1::uuid[])`,
        [live.map((r) => r.order_id), warnAfterMs],
      )
    ).rows,
  );
  const byId = new Map(relevant.map((o) => [o.id, o]));
  const fulfilled = relevant.filter((o) => o.status === "fulfilled" && !o.in_progress).map((o) => o.id);
  const committed = new Map(
    (
      await inventory.query<{ order_id: string; status: string }>(
        "SELECT order_id, status FROM reservations WHERE order_id = ANY($1::uuid[])",
        [fulfilled],
      )
    ).rows.map((r) => [r.order_id, r.status]),
  );

  const findings: Finding[] = [];
  const liveByOrder = new Map(live.map((r) => [r.order_id, r]));
  for (const order of relevant) {
    if (order.in_progress) continue;
    if (order.status === "confirmed") {
      const reservation = liveByOrder.get(order.id);
      if (!reservation) {
        findings.push({
          check: "confirmed_without_reservation",
          subject: order.id,
          detail: `confirmed order ${order.id} has no live reservation in inventory`,
        });
      } else if (describe(reservation.lines) !== describe(order.items)) {
        findings.push({
          check: "confirmed_without_reservation",
          subject: order.id,
          detail: `confirmed order ${order.id} has ${describe(order.items)} but its reservation holds ${describe(reservation.lines)}`,
        });
      }
    }
    if (order.status === "fulfilled" && committed.get(order.id) !== "committed") {
      findings.push({
        check: "fulfilled_not_committed",
        subject: order.id,
        detail: `fulfilled order ${order.id} has ${committed.has(order.id) ? `a ${committed.get(order.id)}` : "no"} reservation, not a committed one`,
      });
    }
  }
  for (const reservation of live) {
    const order = byId.get(reservation.order_id);
    if (!order) {
      findings.push({
        check: "reservation_without_live_order",
        subject: reservation.order_id,
        detail: `${reservation.status} reservation for order ${reservation.order_id}, which does not exist`,
      });
    } else if (!LIVE_ORDER.has(order.status) && !order.in_progress) {
      findings.push({
        check: "reservation_without_live_order",
        subject: reservation.order_id,
        detail: `${reservation.status} reservation for order ${reservation.order_id}, which is ${order.status}`,
      });
    }
  }
  for (const m of mismatches) {
    findings.push({
      check: "reserved_mismatch",
      subject: m.product_id,
      detail: `product ${m.product_id} has ${m.reserved} reserved but its live reservations hold ${m.held}`,
    });
  }

  const inProgress = relevant.filter((o) => o.in_progress);
  const warnings = inProgress
    .filter((o) => o.stale)
    .map((o) => ({
      orderId: o.id,
      detail:
        o.status === "pending"
          ? `order ${o.id} has been pending since ${o.updated_at.toISOString()}`
          : `order ${o.id} became ${o.status} at ${o.updated_at.toISOString()} and inventory has not acknowledged its ${ACTIONS[o.status] ?? "stock action"} yet`,
    }));
  return {
    findings,
    warnings,
    inProgress: inProgress.length,
    checked: { orders: relevant.length, liveReservations: live.length, stockLevels },
  };
}

/** Order states that may hold a live reservation. */
const LIVE_ORDER = new Set(["pending", "confirmed"]);

const ACTIONS: Record<string, string> = {
  confirmed: "reservation confirmation",
  cancelled: "stock release",
  rejected: "stock release",
  fulfilled: "stock commit",
};

const describe = (lines: readonly Line[]) =>
  lines.length === 0 ? "no lines" : lines.map((l) => `${l.quantity} × ${l.product_id}`).join(", ");

/** Runs `read` in one read-only REPEATABLE READ transaction: one consistent snapshot of a database. */
async function snapshot<T>(client: pg.Client, read: (tx: pg.Client) => Promise<T>): Promise<T> {
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    return await read(client);
  } finally {
    await client.query("COMMIT");
  }
}

/** The report as people read it. */
export function formatReport(report: ConsistencyReport, names: { orders: string; inventory: string }): string {
  const { orders, liveReservations, stockLevels } = report.checked;
  const out = [
    `Consistency of ${names.orders} and ${names.inventory}`,
    `  looked at ${orders} orders, ${liveReservations} live reservations and ${stockLevels} stock levels`,
    `  ${report.inProgress} orders in progress (stock action not yet acknowledged)`,
  ];
  if (report.warnings.length > 0) {
    out.push(`  WARNING: ${report.warnings.length} in progress for too long:`);
    for (const w of report.warnings) out.push(`    - ${w.detail}`);
  }
  if (report.findings.length === 0) {
    out.push("  OK: no inconsistency found");
  } else {
    out.push(`  FOUND ${report.findings.length} inconsistencies:`);
    for (const f of report.findings) out.push(`    - [${f.check}] ${f.detail}`);
  }
  return out.join("\n");
}

/** A database URL without its password, for printing. */
function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = "***";
  return u.toString();
}

async function main(): Promise<number> {
  let ordersUrl = process.env.ORDERS_DATABASE_URL?.trim();
  let inventoryUrl = process.env.INVENTORY_DATABASE_URL?.trim();
  let stop = async () => {};
  if (!ordersUrl || !inventoryUrl) {
    const server = await devPostgres();
    stop = () => server.stop();
    ordersUrl ||= server.url("orders");
    inventoryUrl ||= server.url("inventory");
  }
  try {
    const report = await checkConsistency({ ordersUrl, inventoryUrl });
    console.log(formatReport(report, { orders: redact(ordersUrl), inventory: redact(inventoryUrl) }));
    return report.findings.length > 0 ? 1 : 0;
  } finally {
    await stop();
  }
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`check-consistency: could not check: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(2);
    },
  );
}
