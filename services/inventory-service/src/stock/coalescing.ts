import { createBatcher, type Batcher, type Settled } from "@ecommerce/batching/batcher.ts";
import type { HandlerContext } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Database } from "../db/database.ts";
import { remainingMs } from "../interceptors/deadline.ts";
import {
  commitOrders,
  releaseOrders,
  reserveOrders,
  type CommitInput,
  type ReleaseInput,
  type ReservationRecord,
  type ReserveInput,
} from "./reservations.ts";

/** Bounds of each batched step; see {@link createCoalescing}. */
export interface BatchBounds {
  /** Most calls decided in one batch (one transaction). */
  readonly maxBatchSize: number;
  /** Most batches of one step running at once. */
  readonly maxInFlight: number;
  /** Most calls waiting for a batch; more are refused at once as RESOURCE_EXHAUSTED. */
  readonly maxQueued: number;
}

/**
 * 100 orders of up to 100 lines keep a batch's locks and statement small;
 * four batches in flight keep a lock wait on one product from stalling
 * every other order; 2,000 waiting calls are a few batches' worth, past
 * which a caller is better told to back off than left to time out.
 */
export const DEFAULT_BATCH_BOUNDS: BatchBounds = { maxBatchSize: 100, maxInFlight: 4, maxQueued: 2000 };

/** The batched steps, as metrics name them; `reserve_orders` is a ReserveOrders call, a batch by itself. */
export const BATCH_STEPS = ["reserve", "release", "commit", "reserve_orders"] as const;
export type BatchStep = (typeof BATCH_STEPS)[number];

export interface CoalescingDeps {
  db: Kysely<Database>;
  reservationTtlSeconds: number;
  bounds: BatchBounds;
  /** Told each batch's size as it starts, for metrics. */
  onBatch?: (step: BatchStep, size: number) => void;
}

/** One call waiting for its batch. */
interface Waiting<I> {
  input: I;
  signal: AbortSignal;
  /** When its caller stops waiting (epoch ms; Infinity: never). */
  deadline: number;
}

/** Single-order calls served in natural batches, each caller with its own answer. */
export interface Coalescing {
  reserve(input: ReserveInput, call: HandlerContext): Promise<ReservationRecord>;
  release(input: ReleaseInput, call: HandlerContext): Promise<ReservationRecord | undefined>;
  commit(input: CommitInput, call: HandlerContext): Promise<ReservationRecord>;
}

/**
 * Serves concurrent ReserveStock, ReleaseStock and CommitStock calls (from
 * any client) in natural batches, one queue per step; each call carries
 * its caller as the ledger's actor, as batches mix callers. Each batch is one
 * transaction (for reservations one reserve_orders() call), so under load
 * the commit, the round trips and the row locks are shared; a lone call
 * runs at once, alone, as before.
 *
 * A batch runs on behalf of several callers, so no caller's signal can stop
 * it: a caller whose deadline passes, or who cancels, is answered at once
 * with its signal's reason (DEADLINE_EXCEEDED or CANCELED, as before) and
 * left out if its batch has not started; a batch already running finishes
 * for the others, and what it did for the departed caller stands, as a
 * single statement under way always did (a retry is idempotent). A batch
 * waits for locks no longer than the most patient of its callers.
 */
export function createCoalescing(deps: CoalescingDeps): Coalescing {
  const reserve = batched<ReserveInput, ReservationRecord>(deps, "reserve", (inputs, lockTimeoutMs) =>
    reserveOrders(deps.db, inputs, deps.reservationTtlSeconds, lockTimeoutMs),
  );
  const release = batched<ReleaseInput, ReservationRecord | undefined>(deps, "release", (inputs, lockTimeoutMs) =>
    releaseOrders(deps.db, inputs, lockTimeoutMs),
  );
  const commit = batched<CommitInput, ReservationRecord>(deps, "commit", (inputs, lockTimeoutMs) =>
    commitOrders(deps.db, inputs, lockTimeoutMs),
  );
  return { reserve, release, commit };
}

/** A step's batcher, as a function from one call's input to its answer. */
function batched<I, O>(
  deps: CoalescingDeps,
  step: BatchStep,
  run: (inputs: I[], lockTimeoutMs: number) => Promise<Settled<O>[]>,
): (input: I, call: HandlerContext) => Promise<O> {
  const batcher: Batcher<Waiting<I>, O> = createBatcher({
    name: `inventory ${step}`,
    ...deps.bounds,
    onBatch: (size) => deps.onBatch?.(step, size),
    run: async (calls) => {
      // Callers gone before their batch started are left out of it.
      const live = calls.filter((c) => !c.signal.aborted);
      const answers = new Map<Waiting<I>, Settled<O>>();
      if (live.length > 0) (await run(live.map((c) => c.input), lockTimeoutMs(live))).forEach((r, i) => answers.set(live[i]!, r));
      return calls.map((c) => answers.get(c) ?? { status: "rejected", reason: c.signal.reason });
    },
  });
  return (input, call) => {
    call.signal.throwIfAborted();
    const work = batcher.submit({ input, signal: call.signal, deadline: Date.now() + remainingMs(call) });
    return untilAborted(work, call.signal);
  };
}

/** The longest any of `calls` may still wait, in ms; 0 when one of them waits forever. */
function lockTimeoutMs(calls: readonly Waiting<unknown>[]): number {
  const latest = Math.max(...calls.map((c) => c.deadline));
  return Number.isFinite(latest) ? Math.max(1, latest - Date.now()) : 0;
}

/** `work`'s outcome, or `signal`'s reason as soon as it aborts (work goes on regardless). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener("abort", abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}
