import type pg from "pg";

/**
 * Runs `work` in a transaction on a client of its own from `pool`: commits
 * what it resolves, rolls back what it throws. A connection that failed on
 * the way (the database restarted, the backend was terminated) is discarded,
 * never given back to the pool; its 'error' event is listened to meanwhile,
 * so it cannot end the process.
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (e: Error) => {
    broken = e;
  };
  client.on("error", onError);
  try {
    await client.query("begin");
    const result = await work(client);
    await client.query("commit");
    return result;
  } catch (e) {
    await client.query("rollback").catch((r: Error) => {
      broken ??= r;
    });
    throw e;
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}
