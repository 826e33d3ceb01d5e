import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";

/** When the server gives up on the call (epoch ms), set by {@link deadlineCap}. */
const serverDeadline = createContextKey<number>(Number.POSITIVE_INFINITY, { description: "server deadline" });

/**
 * Milliseconds a handler has left: the client's deadline or the server's
 * cap, whichever comes first; Infinity when neither applies.
 */
export function remainingMs(call: HandlerContext): number {
  return Math.min(call.timeoutMs() ?? Number.POSITIVE_INFINITY, call.values.get(serverDeadline) - Date.now());
}

/**
 * Interceptor that gives every unary call at most `maxTimeoutMs`: the
 * client's own deadline when that is shorter, the cap otherwise, including
 * for clients that set no deadline at all (grpcurl and buf curl by default).
 * The handler's `signal` aborts with DEADLINE_EXCEEDED when the cap is
 * reached, and database work stops at its next statement (see
 * stopWhenAborted).
 *
 * Connect's own `maxTimeoutMs` adapter option is not used: it refuses a
 * call whose deadline is longer than the limit with INVALID_ARGUMENT, which
 * punishes a client for being patient, and leaves calls without a deadline
 * unbounded. Streams (health Watch, reflection) are left alone: they last
 * as long as their client wants.
 */
export function deadlineCap(maxTimeoutMs: number): Interceptor {
  const reason = () => new ConnectError(`the call took longer than the server allows (${maxTimeoutMs} ms)`, Code.DeadlineExceeded);
  return (next) => async (req) => {
    if (req.stream) return next(req);
    const capped = new AbortController();
    const forward = () => capped.abort(req.signal.reason);
    if (req.signal.aborted) forward();
    else req.signal.addEventListener("abort", forward, { once: true });
    const timer = setTimeout(() => capped.abort(reason()), maxTimeoutMs);
    req.contextValues.set(serverDeadline, Date.now() + maxTimeoutMs);
    try {
      return await next({ ...req, signal: capped.signal });
    } finally {
      clearTimeout(timer);
      req.signal.removeEventListener("abort", forward);
    }
  };
}
