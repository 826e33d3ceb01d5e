import { ServingStatus, type HealthState } from "./health-state.ts";

/** Options of {@link watchDatabase}. */
export interface DatabaseWatchOptions {
  /** Runs a trivial query such as `SELECT 1`; rejects when the database cannot answer. */
  readonly check: () => Promise<void>;
  /** The services that cannot serve without the database, such as "" and inventory.v1.InventoryService. */
  readonly services: readonly string[];
  /** Time between the end of one check and the start of the next. */
  readonly intervalMs: number;
  /** A check that takes longer than this counts as failed (default: intervalMs). */
  readonly timeoutMs?: number;
  /** Told when the database becomes reachable or unreachable, for logging. */
  readonly onChange?: (reachable: boolean, error?: unknown) => void;
}

/**
 * Checks the database now and then every `intervalMs`, and sets `services`
 * NOT_SERVING while it cannot answer and SERVING again once it does, so
 * that probes and load balancers stop sending work to a server that would
 * only fail it. Returns a function that stops watching.
 */
export function watchDatabase(state: HealthState, options: DatabaseWatchOptions): () => void {
  const timeoutMs = options.timeoutMs ?? options.intervalMs;
  let reachable: boolean | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const tick = async () => {
    let error: unknown;
    let ok = true;
    try {
      await withTimeout(options.check(), timeoutMs);
    } catch (e) {
      ok = false;
      error = e;
    }
    if (stopped) return;
    for (const service of options.services) {
      state.setStatus(service, ok ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
    }
    if (ok !== reachable) {
      reachable = ok;
      options.onChange?.(ok, error);
    }
    // Checking alone never keeps the process alive.
    timer = setTimeout(tick, options.intervalMs).unref();
  };
  void tick();

  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function withTimeout(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the database did not answer within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
