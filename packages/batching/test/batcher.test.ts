import { describe, expect, it } from "vitest";
import { createBatcher, QueueFullError, sizeBucket, type Settled } from "../src/batcher.ts";

/** A step that records the batches it was given and holds each until released. */
function gatedStep() {
  const batches: number[][] = [];
  const gates: Array<() => void> = [];
  const run = async (items: number[]): Promise<Settled<number>[]> => {
    batches.push(items);
    await new Promise<void>((resolve) => gates.push(resolve));
    return items.map((n) => (n < 0 ? { status: "rejected", reason: new Error(`bad ${n}`) } : { status: "fulfilled", value: n * 10 }));
  };
  const releaseNext = async () => {
    while (gates.length === 0) await new Promise((r) => setImmediate(r));
    gates.shift()!();
    await new Promise((r) => setImmediate(r));
  };
  return { batches, run, releaseNext };
}

/** Lets the batcher start what the current turn submitted. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("natural batching", () => {
  it("runs a lone item at once, alone", async () => {
    const step = gatedStep();
    const batcher = createBatcher({ name: "t", run: step.run, maxBatchSize: 10, maxQueued: 10 });
    const result = batcher.submit(1);
    await turn();
    expect(step.batches).toEqual([[1]]);
    await step.releaseNext();
    await expect(result).resolves.toBe(10);
  });

  it("takes everything that queued while the worker was busy as the next batch, in arrival order", async () => {
    const step = gatedStep();
    const sizes: number[] = [];
    const batcher = createBatcher({ name: "t", run: step.run, maxBatchSize: 10, maxQueued: 10, onBatch: (n) => sizes.push(n) });
    const results = [batcher.submit(1)];
    await turn();
    results.push(...[2, 3, 4].map((n) => batcher.submit(n)));
    await turn();
    expect(step.batches).toEqual([[1]]);
    await step.releaseNext();
    expect(step.batches).toEqual([[1], [2, 3, 4]]);
    await step.releaseNext();
    await expect(Promise.all(results)).resolves.toEqual([10, 20, 30, 40]);
    expect(sizes).toEqual([1, 3]);
    expect(batcher.stats()).toMatchObject({ batches: 2, items: 4, largest: 3, sizes: { "1": 1, "3-4": 1 } });
  });

  it("caps a batch at its size and keeps the rest for the next", async () => {
    const step = gatedStep();
    const batcher = createBatcher({ name: "t", run: step.run, maxBatchSize: 2, maxQueued: 10 });
    const results = [1, 2, 3, 4, 5].map((n) => batcher.submit(n));
    await step.releaseNext();
    await step.releaseNext();
    await step.releaseNext();
    expect(step.batches).toEqual([[1, 2], [3, 4], [5]]);
    await expect(Promise.all(results)).resolves.toEqual([10, 20, 30, 40, 50]);
  });

  it("gives each item its own outcome: one failure fails no neighbour", async () => {
    const step = gatedStep();
    const batcher = createBatcher({ name: "t", run: step.run, maxBatchSize: 10, maxQueued: 10 });
    const first = expect(batcher.submit(0)).resolves.toBe(0);
    const good = expect(batcher.submit(2)).resolves.toBe(20);
    const bad = expect(batcher.submit(-1)).rejects.toThrow("bad -1");
    await step.releaseNext();
    expect(step.batches).toEqual([[0, 2, -1]]);
    await Promise.all([first, good, bad]);
  });

  it("fails every item of a batch whose step throws, and goes on with the next batch", async () => {
    let calls = 0;
    const batcher = createBatcher<number, number>({
      name: "t",
      maxBatchSize: 10,
      maxQueued: 10,
      run: async (items) => {
        if (calls++ === 0) throw new Error("database gone");
        return items.map((n) => ({ status: "fulfilled", value: n }));
      },
    });
    await expect(batcher.submit(1)).rejects.toThrow("database gone");
    await expect(batcher.submit(2)).resolves.toBe(2);
  });

  it("runs up to maxInFlight batches side by side", async () => {
    const step = gatedStep();
    const batcher = createBatcher({ name: "t", run: step.run, maxBatchSize: 10, maxInFlight: 2, maxQueued: 10 });
    const results = [batcher.submit(1)];
    await turn();
    results.push(batcher.submit(2));
    await turn();
    results.push(batcher.submit(3), batcher.submit(4));
    await turn();
    expect(step.batches).toEqual([[1], [2]]);
    expect(batcher.inFlight).toBe(2);
    expect(batcher.queued).toBe(2);
    await step.releaseNext();
    expect(step.batches).toEqual([[1], [2], [3, 4]]);
    await step.releaseNext();
    await step.releaseNext();
    await expect(Promise.all(results)).resolves.toEqual([10, 20, 30, 40]);
    await batcher.drained();
  });

  it("refuses at once past its queue bound, and takes items again once there is room", async () => {
    const step = gatedStep();
    const batcher = createBatcher({ name: "reserve", run: step.run, maxBatchSize: 10, maxQueued: 2 });
    const accepted = [batcher.submit(1)];
    await turn();
    accepted.push(batcher.submit(2), batcher.submit(3));
    await expect(batcher.submit(4)).rejects.toBeInstanceOf(QueueFullError);
    await expect(batcher.submit(4)).rejects.toThrow("reserve: more than 2 items are waiting");
    await step.releaseNext();
    const later = batcher.submit(5);
    await step.releaseNext();
    await step.releaseNext();
    await expect(Promise.all([...accepted, later])).resolves.toEqual([10, 20, 30, 50]);
  });

  it("gathers what one batch hands on to the next step into one batch there", async () => {
    const second: number[][] = [];
    const next = createBatcher<number, number>({
      name: "next",
      maxBatchSize: 10,
      maxQueued: 10,
      run: async (items) => {
        second.push(items);
        return items.map((n) => ({ status: "fulfilled", value: n }));
      },
    });
    const first = createBatcher<number, number>({
      name: "first",
      maxBatchSize: 10,
      maxQueued: 10,
      run: async (items) => items.map((n) => ({ status: "fulfilled", value: n })),
    });
    const chained = (n: number) => first.submit(n).then((m) => next.submit(m));
    await expect(Promise.all([1, 2, 3, 4].map(chained))).resolves.toEqual([1, 2, 3, 4]);
    expect(second).toEqual([[1, 2, 3, 4]]);
  });

  it("refuses a step that answers the wrong number of results", async () => {
    const batcher = createBatcher<number, number>({ name: "t", maxBatchSize: 10, maxQueued: 10, run: async () => [] });
    await expect(batcher.submit(1)).rejects.toThrow("a batch of 1 items was answered with 0 results");
  });

  it("buckets batch sizes by powers of two", () => {
    expect([1, 2, 3, 4, 5, 8, 9, 16, 17, 100].map(sizeBucket)).toEqual(["1", "2", "3-4", "3-4", "5-8", "5-8", "9-16", "9-16", "17-32", "65-128"]);
  });
});
