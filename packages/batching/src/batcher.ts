/**
 * Natural batching (LMAX's "smart batching"): work items queue while the
 * worker is busy, and the worker takes everything queued, up to a cap, the
 * moment it is free. There is no timer: an item that arrives at an idle
 * batcher starts in the same turn of the event loop, alone, so latency at
 * low load is unchanged; under load batches grow by themselves and the
 * fixed cost of a step (a commit, a round trip, a lock) is shared by every
 * item in the batch.
 *
 * A batch starts once the current turn's callbacks have run (setImmediate),
 * not inside submit(): the items of one finished batch go on to the next
 * step one promise callback at a time, and starting on the first of them
 * would send it alone and the rest after it.
 *
 * Each item still gets its own result: `run` answers one settled result per
 * item, in order. Everything is bounded: the batch size, the number of
 * batches running at once, and the queue, past which `submit` refuses at
 * once with {@link QueueFullError} instead of letting latency and memory
 * grow.
 */

/** Refusal of an item when the queue is at its bound; callers answer "busy, retry later". */
export class QueueFullError extends Error {
  constructor(name: string, limit: number) {
    super(`${name}: more than ${limit} items are waiting`);
    this.name = "QueueFullError";
  }
}

/** The outcome of one item: its value, or why it failed (the shape of Promise.allSettled). */
export type Settled<O> = PromiseSettledResult<O>;

export interface BatcherOptions<I, O> {
  /** For messages and stats. */
  name: string;
  /**
   * Handles one batch and answers one settled result per item, in item
   * order. Throwing (or rejecting) fails every item of the batch with that
   * error.
   */
  run: (items: I[]) => Promise<Settled<O>[]>;
  /** Most items in one batch. */
  maxBatchSize: number;
  /** Most batches running at once; 1 is a single worker. */
  maxInFlight?: number;
  /** Most items waiting for a batch; more are refused with QueueFullError. */
  maxQueued: number;
  /** Told the size of every batch as it starts, for metrics. */
  onBatch?: (size: number) => void;
}

/** How a batcher's batches have been: their count, items, and sizes by power of two. */
export interface BatchStats {
  name: string;
  batches: number;
  items: number;
  largest: number;
  /** Batches by size bucket: "1", "2", "3-4", "5-8", ... */
  sizes: Record<string, number>;
}

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (reason: unknown) => void;
}

/** A step whose concurrent calls are served in natural batches. */
export interface Batcher<I, O> {
  /** Queues one item; resolves or rejects with that item's own result. */
  submit(item: I): Promise<O>;
  /** Items waiting and batches running now. */
  readonly queued: number;
  readonly inFlight: number;
  stats(): BatchStats;
  /** Resolves once nothing is queued or running. */
  drained(): Promise<void>;
}

/** Makes a {@link Batcher}; see the module comment for how it batches. */
export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  const maxInFlight = options.maxInFlight ?? 1;
  if (options.maxBatchSize < 1 || maxInFlight < 1 || options.maxQueued < 0) {
    throw new RangeError(`${options.name}: batch size and batches in flight must be at least 1, the queue bound at least 0`);
  }
  let queue: Waiting<I, O>[] = [];
  let inFlight = 0;
  const stats: BatchStats = { name: options.name, batches: 0, items: 0, largest: 0, sizes: {} };
  let idle: Array<() => void> = [];
  let scheduled = false;

  /** Starts what can start once this turn's callbacks have submitted their items. */
  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      pump();
    });
  }

  function pump(): void {
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = queue.length <= options.maxBatchSize ? queue : queue.slice(0, options.maxBatchSize);
      queue = batch === queue ? [] : queue.slice(batch.length);
      inFlight++;
      record(batch.length);
      void runBatch(batch).finally(() => {
        inFlight--;
        pump();
        if (inFlight === 0 && queue.length === 0) {
          const waiters = idle;
          idle = [];
          waiters.forEach((resolve) => resolve());
        }
      });
    }
  }

  async function runBatch(batch: Waiting<I, O>[]): Promise<void> {
    let results: Settled<O>[];
    try {
      results = await options.run(batch.map((w) => w.item));
      if (results.length !== batch.length) {
        throw new Error(`${options.name}: a batch of ${batch.length} items was answered with ${results.length} results`);
      }
    } catch (error) {
      batch.forEach((w) => w.reject(error));
      return;
    }
    batch.forEach((w, i) => {
      const result = results[i]!;
      if (result.status === "fulfilled") w.resolve(result.value);
      else w.reject(result.reason);
    });
  }

  function record(size: number): void {
    stats.batches++;
    stats.items += size;
    stats.largest = Math.max(stats.largest, size);
    const bucket = sizeBucket(size);
    stats.sizes[bucket] = (stats.sizes[bucket] ?? 0) + 1;
    options.onBatch?.(size);
  }

  return {
    submit(item) {
      // Items that will start as soon as the pending turn ends are not waiting.
      const startable = (maxInFlight - inFlight) * options.maxBatchSize;
      if (queue.length >= options.maxQueued + startable) {
        return Promise.reject(new QueueFullError(options.name, options.maxQueued));
      }
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        schedule();
      });
    },
    get queued() {
      return queue.length;
    },
    get inFlight() {
      return inFlight;
    },
    stats: () => structuredClone(stats),
    drained: () => (inFlight === 0 && queue.length === 0 ? Promise.resolve() : new Promise((resolve) => idle.push(resolve))),
  };
}

/** "1", "2", "3-4", "5-8", "9-16", ...: the power-of-two bucket a batch size falls in. */
export function sizeBucket(size: number): string {
  if (size <= 2) return String(size);
  const high = 2 ** Math.ceil(Math.log2(size));
  return `${high / 2 + 1}-${high}`;
}
