import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { freePort } from "@ecommerce/tools/postgres.ts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { lockStockRow, outcomes, replicaClients, startHarness, stockInconsistencies, type Harness } from "./inventory-harness.ts";

/** The count and sum of `inventory_batch_size` for `step`, read from the metrics endpoint. */
async function batchSizes(h: Harness, step: string): Promise<{ batches: number; calls: number }> {
  const text = await (await fetch(h.server.metricsUrl!)).text();
  const value = (series: string) => Number(new RegExp(`^inventory_batch_size_${series}\\{step="${step}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
  return { batches: value("count"), calls: value("sum") };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("with the default batch bounds", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ metricsPort: await freePort(), reservationTtlSeconds: 1, sweepIntervalMs: 50 });
  });
  afterAll(() => h.close());

  it("serves two hundred racing ReserveStock calls in shared batches, exactly ten getting the last ten units", async () => {
    const product = await h.product({ initialStock: 10 });
    const before = await batchSizes(h, "reserve");
    const cs = replicaClients(h);
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) =>
        cs[i % cs.length]!.reserveStock({ orderId: randomUUID(), lines: [{ productId: product.id, quantity: 1 }] }),
      ),
    );
    expect(outcomes(results)).toEqual({ ok: 10, FailedPrecondition: 190 });
    const after = await batchSizes(h, "reserve");
    expect(after.calls - before.calls).toBe(200);
    // Fewer transactions than calls: batches really formed.
    expect(after.batches - before.batches).toBeLessThan(200);
    expect(await stockInconsistencies(h.server)).toEqual([]);
  });

  it("serves racing releases and commits in shared batches, each caller with its own answer", async () => {
    const product = await h.product({ initialStock: 100 });
    const orderIds = Array.from({ length: 60 }, () => randomUUID());
    await h.client.reserveOrders({ orders: orderIds.map((orderId) => ({ orderId, lines: [{ productId: product.id, quantity: 1 }] })) });
    const before = { release: await batchSizes(h, "release"), commit: await batchSizes(h, "commit") };
    const cs = replicaClients(h);
    const unknown = randomUUID();
    const [released, committed, twice, notFound] = await Promise.all([
      Promise.allSettled(orderIds.slice(0, 30).map((orderId, i) => cs[i % 4]!.releaseStock({ orderId, reason: "cancelled" }))),
      Promise.allSettled(orderIds.slice(30).map((orderId, i) => cs[i % 4]!.commitStock({ orderId }))),
      Promise.allSettled(orderIds.slice(30, 35).map((orderId, i) => cs[i % 4]!.commitStock({ orderId }))),
      Promise.allSettled([cs[0]!.commitStock({ orderId: unknown })]),
    ]);
    expect(outcomes(released)).toEqual({ ok: 30 });
    expect(outcomes(committed)).toEqual({ ok: 30 });
    expect(outcomes(twice)).toEqual({ ok: 5 });
    expect(outcomes(notFound)).toEqual({ NotFound: 1 });
    expect((await h.client.getProduct({ productId: product.id })).product?.stock).toMatchObject({ onHand: 70, reserved: 0 });
    const after = { release: await batchSizes(h, "release"), commit: await batchSizes(h, "commit") };
    expect(after.release.calls - before.release.calls).toBe(30);
    expect(after.commit.calls - before.commit.calls).toBe(36);
    expect(after.release.batches - before.release.batches + after.commit.batches - before.commit.batches).toBeLessThan(66);
    expect(await stockInconsistencies(h.server)).toEqual([]);
  });

  it("never deadlocks when batches overlap in products in opposite orders while the same orders are released, committed and expire", async () => {
    const ids = (await Promise.all(Array.from({ length: 4 }, () => h.product({ initialStock: 200 })))).map((p) => p.id);
    const cs = replicaClients(h);
    const orderIds = Array.from({ length: 240 }, () => randomUUID());
    const linesOf = (i: number) => {
      const lines = ids.filter((_, j) => j !== i % 4).map((productId, j) => ({ productId, quantity: 1 + ((i + j) % 3) }));
      return i % 2 ? lines.reverse() : lines;
    };
    const work = orderIds.map(async (orderId, i) => {
      const c = cs[i % 4]!;
      // A third of the orders come in ReserveOrders batches of ten, the rest one by one.
      if (i % 30 === 0) {
        const batch = orderIds.slice(i, i + 10).map((id, k) => ({ orderId: id, lines: linesOf(i + k) }));
        await c.reserveOrders({ orders: i % 60 ? batch.reverse() : batch });
      } else if (i % 30 >= 10) {
        await c.reserveStock({ orderId, lines: linesOf(i) });
      }
      await sleep(i % 7 === 0 ? 1100 : 0);
      if (i % 3 === 0) await c.releaseStock({ orderId, reason: "cancelled" });
      else if (i % 3 === 1) await c.commitStock({ orderId });
      // A repeat, racing its order's release, commit or expiry.
      await c.reserveStock({ orderId, lines: linesOf(i) });
    });
    const counts = outcomes(await Promise.allSettled(work));
    expect(Object.keys(counts).filter((k) => !["ok", "FailedPrecondition", "NotFound"].includes(k))).toEqual([]);
    expect(counts.ok).toBeGreaterThan(0);
    expect(await stockInconsistencies(h.server)).toEqual([]);
  });

  it("serves the batch-size histogram and the process metrics over plain HTTP", async () => {
    const res = await fetch(h.server.metricsUrl!);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toContain("# TYPE inventory_batch_size histogram");
    expect(text).toMatch(/^inventory_batch_size_bucket\{le="1",step="reserve"\} \d+$/m);
    expect(text).toMatch(/^inventory_batch_size_count\{step="reserve_orders"\} \d+$/m);
    expect(text).toContain("process_cpu_user_seconds_total");
    expect((await fetch(new URL("/other", h.server.metricsUrl))).status).toBe(404);
  });
});

describe("with small batch bounds", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ batching: { maxBatchSize: 10, maxInFlight: 1, maxQueued: 2 } });
  });
  afterAll(() => h.close());

  /**
   * Occupies the one batch in flight with a reservation waiting for a lock,
   * so that calls made meanwhile queue; `unblock` lets it finish.
   */
  async function blockBatches(): Promise<{ unblock(): Promise<void> }> {
    const blocker = await h.product({ initialStock: 10 });
    const release = await lockStockRow(h.server, blocker.id);
    const first = h.client.reserveStock({ orderId: randomUUID(), lines: [{ productId: blocker.id, quantity: 1 }] });
    await sleep(50);
    return {
      async unblock() {
        await release();
        await first;
      },
    };
  }

  it("refuses a burst past the queue bound at once with RESOURCE_EXHAUSTED", async () => {
    const product = await h.product({ initialStock: 10 });
    // Two calls may queue behind the blocked batch; the other seven are refused.
    const blocked = await blockBatches();
    const settled: PromiseSettledResult<unknown>[] = [];
    const started = Date.now();
    const calls = Array.from({ length: 9 }, () =>
      h.client.reserveStock({ orderId: randomUUID(), lines: [{ productId: product.id, quantity: 1 }] }).then(
        (value) => void settled.push({ status: "fulfilled", value }),
        (reason: unknown) => void settled.push({ status: "rejected", reason }),
      ),
    );
    await vi.waitFor(() => expect(settled).toHaveLength(7), { timeout: 2000, interval: 10 });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(outcomes(settled)).toEqual({ ResourceExhausted: 7 });
    await blocked.unblock();
    await Promise.all(calls);
    expect(outcomes(settled)).toEqual({ ResourceExhausted: 7, ok: 2 });
  });

  it("answers a caller whose deadline passes without aborting the batch of the others", async () => {
    const contested = await h.product({ initialStock: 10 });
    const releaseContested = await lockStockRow(h.server, contested.id);
    const lines = [{ productId: contested.id, quantity: 1 }];
    // The next two calls queue and then share a batch.
    const blocked = await blockBatches();
    const hasty = randomUUID();
    const patient = randomUUID();
    const hastyCall = h.client.reserveStock({ orderId: hasty, lines }, { timeoutMs: 300 }).catch((e: unknown) => ConnectError.from(e));
    const patientCall = h.client.reserveStock({ orderId: patient, lines }, { timeoutMs: 10_000 });
    await sleep(50);
    await blocked.unblock();
    // Their batch now waits for the contested row, past the hasty caller's deadline.
    const hastyError = await hastyCall;
    expect(hastyError).toBeInstanceOf(ConnectError);
    expect((hastyError as ConnectError).code).toBe(Code.DeadlineExceeded);
    await releaseContested();
    expect((await patientCall).reservation?.orderId).toBe(patient);
    expect(await stockInconsistencies(h.server)).toEqual([]);
  });

  it("answers racing calls for the same order in one batch as an order and its repeat", async () => {
    const p = await h.product({ initialStock: 10 });
    const blocked = await blockBatches();
    // Queued behind the blocked batch, the two go in one batch together.
    const orderId = randomUUID();
    const twins = [2, 3].map((quantity) =>
      h.client.reserveStock({ orderId, lines: [{ productId: p.id, quantity }] }).then(
        (r) => r.reservation,
        (e: unknown) => ConnectError.from(e),
      ),
    );
    await sleep(50);
    await blocked.unblock();
    const [a, b] = await Promise.all(twins);
    expect(a).toMatchObject({ orderId, lines: [{ productId: p.id, quantity: 2 }] });
    expect((b as ConnectError).code).toBe(Code.AlreadyExists);
    expect(await h.stockOf(p.id)).toMatchObject({ reserved: 2 });
    expect(await stockInconsistencies(h.server)).toEqual([]);
  });

  it("leaves out of its batch a caller who gave up while queued", async () => {
    const other = await h.product({ initialStock: 10 });
    const blocked = await blockBatches();
    const gone = randomUUID();
    const err = await h.client
      .reserveStock({ orderId: gone, lines: [{ productId: other.id, quantity: 1 }] }, { timeoutMs: 100 })
      .catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    await blocked.unblock();
    expect(await h.server.db.selectFrom("reservations").select("order_id").where("order_id", "=", gone).executeTakeFirst()).toBeUndefined();
  });
});
