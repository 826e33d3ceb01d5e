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

/** The longest deadline a call keeps, a whole number of seconds: Node.js timers hold at most 2^31 - 1 ms. */
const MAX_DEADLINE_MS = 2_147_483_000;
const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const GRPC_TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
const CONNECT_TIMEOUT = /^\d{1,10}$/;

/**
 * The deadline a request carries, in milliseconds (`grpc-timeout` for gRPC
 * and gRPC-Web, `connect-timeout-ms` for Connect), capped at about 24 days
 * by rewriting the header before connect-es reads it; undefined when there
 * is none or it is malformed (connect-es refuses those).
 *
 * connect-es arms a timer with the deadline as sent, and Node.js fires a
 * timer of more than 2^31 - 1 ms at once, with a TimeoutOverflowWarning:
 * the call's signal aborted as DEADLINE_EXCEEDED while the call went on
 * and answered OK. Unary calls are capped far lower by {@link deadlineCap}.
 */
export function capDeadlineHeader(header: Headers): number | undefined {
  const deadline = readDeadline(header);
  if (deadline === undefined || deadline.ms <= MAX_DEADLINE_MS) return deadline?.ms;
  header.set(deadline.name, deadline.name === "grpc-timeout" ? `${MAX_DEADLINE_MS / 1000}S` : String(MAX_DEADLINE_MS));
  return MAX_DEADLINE_MS;
}

function readDeadline(header: Headers): { name: string; ms: number } | undefined {
  const grpc = header.get("grpc-timeout");
  if (grpc !== null) {
    const match = GRPC_TIMEOUT.exec(grpc);
    return match ? { name: "grpc-timeout", ms: Number(match[1]) * GRPC_TIMEOUT_UNIT_MS[match[2]!]! } : undefined;
  }
  const connect = header.get("connect-timeout-ms");
  return connect !== null && CONNECT_TIMEOUT.test(connect) ? { name: "connect-timeout-ms", ms: Number(connect) } : undefined;
}
