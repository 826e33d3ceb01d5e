import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/database.ts";
import { expireReservations } from "./reservations.ts";

/** Reservations expired per transaction: keeps each sweep's locks short. */
const BATCH_SIZE = 100;

/** A running expiry sweeper. */
export interface ExpirySweeper {
  /** Stops sweeping; resolves once a sweep in progress has finished. */
  stop(): Promise<void>;
}

/**
 * Every `intervalMs`, expires the reservations nobody confirmed, released or
 * committed before their expiry time and gives their stock back, batch by
 * batch until none is due. A failed sweep is logged and retried next time.
 */
export function startExpirySweeper(options: {
  db: Kysely<Database>;
  intervalMs: number;
  logger: Logger;
}): ExpirySweeper {
  const { db, intervalMs, logger } = options;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> = Promise.resolve();

  async function sweep() {
    try {
      let total = 0;
      let expired: number;
      do {
        expired = await expireReservations(db, BATCH_SIZE);
        total += expired;
      } while (expired === BATCH_SIZE && !stopped);
      if (total > 0) logger.info({ expired: total }, "expired reservations");
    } catch (err) {
      logger.error({ err }, "reservation expiry sweep failed");
    }
  }

  function schedule() {
    timer = setTimeout(() => {
      current = sweep().then(() => {
        if (!stopped) schedule();
      });
    }, intervalMs);
    // The sweeper alone never keeps the process alive.
    timer.unref();
  }

  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}
