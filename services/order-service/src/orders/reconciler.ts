import type { FastifyInstance } from "fastify";
import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import { leaseFor, type OrderDeps } from "./deps.ts";
import { pruneKeys } from "./idempotency.ts";
import type { Order } from "./order.ts";
import { driveOrders, giveUpOrders } from "./place-order.ts";
import { directSteps } from "./steps.ts";
import { claimPendingOrders, type Lease } from "./repository.ts";
import type { OrderStatus } from "./status.ts";
import { syncStockOnce } from "./stock-sync.ts";

/**
 * The reconciler: the one background worker of the order service. Every
 * `intervalMs` it
 *
 *  (a) re-drives orders pending for longer than `pendingGraceMs` (a crash
 *      or an inventory outage left them) with the same reserve and settle
 *      steps as POST /orders, each claimed batch in one ReserveOrders call
 *      and one settling statement (ReserveStock is idempotent on the order
 *      id), and rejects those pending for longer than `pendingGiveUpMs`
 *      in one settling statement,
 *      releasing whatever inventory may hold for them; either way the
 *      order's unfinished Idempotency-Key gets the response its client
 *      would have got;
 *  (b) pays the stock actions orders still owe inventory (stock-sync.ts);
 *  (c) prunes Idempotency-Keys past their retention.
 *
 * Work is claimed row by row in short statements (FOR UPDATE SKIP LOCKED,
 * then a lease in `orders.next_attempt_at` that grows with each failed
 * attempt), never in a transaction held open across inventory calls, so any
 * number of replicas can run it side by side.
 */

/** When and how patiently the reconciler works. */
export interface ReconcilerOptions {
  intervalMs: number;
  /** A pending order younger than this is left to its request. */
  pendingGraceMs: number;
  /** A pending order older than this is rejected. */
  pendingGiveUpMs: number;
}

/** What one pass did; the log line of a pass shows the non-zero ones. */
interface PassReport {
  /** Pending orders re-driven, and what became of them. */
  redriven: number;
  confirmed: number;
  rejected: number;
  /** Re-driven but inventory still unavailable: tried again after a backoff. */
  stillPending: number;
  /** Orders rejected because they stayed pending too long. */
  gaveUp: number;
  /** Stock actions claimed, by the state that owes them (confirmed → confirm, cancelled/rejected → release, fulfilled → commit). */
  stock: Partial<Record<OrderStatus, number>>;
  /** Idempotency-Keys deleted. */
  prunedKeys: number;
}

/** A running reconciler. */
export interface Reconciler {
  /** Stops the timer; resolves once a pass in progress has finished. */
  stop(): Promise<void>;
}

/** Pending orders claimed per statement; they are re-driven as one batch. */
const PENDING_BATCH = 500;
/** A pass stops claiming pending orders after this many batches, leaving time for the other work. */
const MAX_PENDING_BATCHES = 20;
const PRUNE_BATCH = 1000;
/** The longest a background attempt waits after failures before the next one. */
const MAX_BACKOFF_MS = 30_000;

/**
 * Starts the reconciler: a pass every `intervalMs`, the next one scheduled
 * when the previous has finished (passes never overlap in one process).
 */
function startReconciler(deps: OrderDeps, options: ReconcilerOptions): Reconciler {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<void> = Promise.resolve();

  const schedule = () => {
    timer = setTimeout(() => {
      pass = reconcileOnce(deps, options)
        .then(
          () => {},
          (error: unknown) => deps.log.error({ err: error }, "reconciler pass failed; will retry"),
        )
        .finally(() => {
          if (!stopped) schedule();
        });
    }, options.intervalMs);
    // The reconciler alone never keeps the process alive.
    timer.unref();
  };
  schedule();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await pass;
    },
  };
}

/**
 * Starts the reconciler of a built app (its database pool and inventory
 * client) as configured, or returns undefined when RECONCILE_INTERVAL_MS is
 * 0. Stop it before closing the app.
 */
export function startAppReconciler(app: FastifyInstance, config: Config): Reconciler | undefined {
  if (config.reconcileIntervalMs === 0) return undefined;
  const deps: OrderDeps = {
    db: app.db,
    inventory: app.inventory,
    // Each pass hands a step every order it claimed: one batch per call.
    steps: directSteps(app.db, app.inventory),
    log: app.log.child({ component: "reconciler" }),
    leaseMs: leaseFor(config.inventoryTimeoutMs),
  };
  return startReconciler(deps, {
    intervalMs: config.reconcileIntervalMs,
    pendingGraceMs: config.pendingGraceMs,
    pendingGiveUpMs: config.pendingGiveUpMs,
  });
}

/** One pass of the reconciler (see the module comment); logs what it did at info level when it did something. */
async function reconcileOnce(deps: OrderDeps, options: ReconcilerOptions): Promise<PassReport> {
  const lease: Lease = { minMs: deps.leaseMs, baseMs: options.intervalMs, maxMs: MAX_BACKOFF_MS };
  const report: PassReport = {
    redriven: 0,
    confirmed: 0,
    rejected: 0,
    stillPending: 0,
    gaveUp: 0,
    stock: {},
    prunedKeys: 0,
  };

  for (let batch = 0; batch < MAX_PENDING_BATCHES; batch++) {
    const claimed = await claimPendingOrders(deps.db, {
      graceMs: options.pendingGraceMs,
      giveUpMs: options.pendingGiveUpMs,
      lease,
      limit: PENDING_BATCH,
    });
    const live = claimed.filter((o) => !o.expired);
    const expired = claimed.filter((o) => o.expired);
    const [driven, givenUp] = await Promise.all([
      live.length > 0 ? driveOrders(deps, live) : [],
      expired.length > 0 ? giveUpOrders(deps, expired.map((o) => o.id)) : [],
    ]);
    driven.forEach((result, i) => report[outcomeOf(deps, live[i]!.id, result, false)] += 1);
    givenUp.forEach((result, i) => report[outcomeOf(deps, expired[i]!.id, result, true)] += 1);
    report.redriven += claimed.filter((o) => !o.expired).length;
    if (claimed.length < PENDING_BATCH) break;
  }

  report.stock = await syncStockOnce(deps, lease);
  report.prunedKeys = await pruneKeys(deps.db, PRUNE_BATCH);

  const { stock, ...counts } = report;
  const done = Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
  if (Object.keys(done).length > 0 || Object.keys(stock).length > 0) {
    deps.log.info({ ...done, ...(Object.keys(stock).length > 0 ? { stock } : {}) }, "reconciled orders");
  }
  return report;
}

type Outcome = "confirmed" | "rejected" | "stillPending" | "gaveUp";

/** What became of one claimed pending order, re-driven or given up. */
function outcomeOf(deps: OrderDeps, orderId: string, result: PromiseSettledResult<Order>, expired: boolean): Outcome {
  if (result.status === "fulfilled") return result.value.status === "confirmed" ? "confirmed" : "rejected";
  const error: unknown = result.reason;
  if (!(error instanceof AppError)) {
    deps.log.error({ err: error, orderId }, "re-driving a pending order failed; will retry");
    return "stillPending";
  }
  if (error.code === "inventory_unavailable") return "stillPending";
  return expired ? "gaveUp" : "rejected";
}
