import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor, type UnaryRequest } from "@connectrpc/connect";

/** How retries wait: exponential backoff from `baseDelayMs`, capped at `maxDelayMs`, with jitter. */
export interface RetryOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  /** Attempts of a call that has no deadline (every call here has one, but a caller may opt out). */
  maxAttemptsWithoutDeadline: number;
}

const DEFAULTS: RetryOptions = { baseDelayMs: 25, maxDelayMs: 500, maxAttemptsWithoutDeadline: 4 };

const GRPC_TIMEOUT = "grpc-timeout";

/**
 * Connect interceptor that retries calls of idempotent methods (those whose
 * proto declares `idempotency_level`, as every InventoryService call that
 * changes or reads stock does) when they fail with UNAVAILABLE: inventory
 * restarting, a connection refused or reset, its database briefly gone.
 * Safe because the server treats a repeat as the same call.
 *
 * Retries stay within the caller's deadline: the call's overall signal
 * still ends it at the deadline, each attempt is sent with only the time
 * that remains (the grpc-timeout header), and no retry starts when its
 * backoff would outlast the deadline. Backoff doubles from `baseDelayMs` up
 * to `maxDelayMs`, each wait drawn between half and all of it so that
 * callers do not retry in lockstep.
 */
export function retryUnavailable(options: Partial<RetryOptions> = {}): Interceptor {
  const { baseDelayMs, maxDelayMs, maxAttemptsWithoutDeadline } = { ...DEFAULTS, ...options };
  return (next) => async (req) => {
    if (req.stream || req.method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN) return next(req);
    const timeoutMs = parseGrpcTimeout(req.header.get(GRPC_TIMEOUT));
    const deadline = timeoutMs === undefined ? undefined : performance.now() + timeoutMs;

    for (let attempt = 1; ; attempt++) {
      try {
        return await next(deadline === undefined ? req : withTimeout(req, deadline - performance.now()));
      } catch (error) {
        if (ConnectError.from(error).code !== Code.Unavailable || req.signal.aborted) throw error;
        const cap = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
        const delay = cap / 2 + Math.random() * (cap / 2);
        const outOfTime = deadline === undefined ? attempt >= maxAttemptsWithoutDeadline : performance.now() + delay >= deadline;
        if (outOfTime) throw error;
        await sleep(delay, req.signal);
      }
    }
  };
}

/** The request with only `remainingMs` left on its grpc-timeout. */
function withTimeout<I extends UnaryRequest>(req: I, remainingMs: number): I {
  const header = new Headers(req.header);
  header.set(GRPC_TIMEOUT, `${Math.max(1, Math.ceil(remainingMs))}m`);
  return { ...req, header };
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** Milliseconds of a grpc-timeout header value such as `2000m`, or undefined. */
function parseGrpcTimeout(value: string | null): number | undefined {
  const match = value?.match(/^(\d{1,8})([HMSmun])$/);
  if (!match) return undefined;
  const [, amount, unit] = match;
  return Number(amount) * (UNIT_MS[unit as string] ?? 1);
}

/** Waits `ms`, or until `signal` aborts (the call's deadline or cancellation), rejecting with its reason. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
