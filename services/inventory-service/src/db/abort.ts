import type { Kysely } from "kysely";

/**
 * A view of `db` that refuses to start a statement once `signal` has
 * aborted, throwing the signal's reason (for a call past its deadline, a
 * DEADLINE_EXCEEDED ConnectError). Inside a transaction the throw rolls the
 * whole transaction back, so work nobody waits for any more stops at the
 * next statement and never leaves half of a change behind. A statement
 * already running is let finish: PostgreSQL applies it or not as a whole,
 * and a COMMIT under way completes.
 */
export function stopWhenAborted<DB>(db: Kysely<DB>, signal: AbortSignal): Kysely<DB> {
  signal.throwIfAborted();
  return db.withPlugin({
    transformQuery({ node }) {
      signal.throwIfAborted();
      return node;
    },
    transformResult: ({ result }) => Promise.resolve(result),
  });
}
