import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Level, Logger } from "pino";

/** Status names as gRPC tools print them (INVALID_ARGUMENT), by code. */
const STATUS_NAMES = new Map<Code | undefined, string>([
  [undefined, "OK"],
  ...Object.values(Code)
    .filter((code): code is Code => typeof code === "number")
    .map((code): [Code, string] => [code, Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()]),
]);

/**
 * How loud the line of a finished call is. Successful calls are `debug`:
 * at thousands of calls a second a line each would bury everything else,
 * so they show only with LOG_LEVEL=debug. Refusals the caller caused
 * (bad input, unknown ids, short stock) are `info`; overload and timeouts
 * `warn`; faults of this server `error`.
 */
function levelOf(code: Code | undefined): Level {
  switch (code) {
    case undefined:
      return "debug";
    case Code.Internal:
    case Code.Unknown:
    case Code.DataLoss:
    case Code.Unimplemented:
      return "error";
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.ResourceExhausted:
      return "warn";
    default:
      return "info";
  }
}

/**
 * Interceptor that logs one line per call when it ends: the procedure, the
 * gRPC status, the duration in milliseconds and the caller's
 * `x-request-id` header when there is one; for a fault of this server, the
 * underlying error too (its details never reach the client). A line whose
 * level is off costs a clock read and a comparison.
 */
export function callLogging(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const start = performance.now();
    const finish = (error: unknown) => {
      // A call that succeeded after its client left or ran out of time still
      // failed for the client; one that broke because its client left (a
      // stream closed under it) failed for that reason, not through a fault.
      const clientGone = req.signal.aborted && !(error instanceof ConnectError);
      const failure = clientGone ? req.signal.reason : error;
      // As the client sees it: Connect answers anything but a ConnectError as INTERNAL.
      const status = failure === undefined ? undefined : ConnectError.from(failure, Code.Internal);
      const code = status?.code;
      const level = levelOf(code);
      if (!logger.isLevelEnabled(level)) return;
      const line: Record<string, unknown> = {
        procedure: `/${req.service.typeName}/${req.method.name}`,
        code: STATUS_NAMES.get(code),
        durationMs: Math.round((performance.now() - start) * 100) / 100,
      };
      const requestId = req.header.get("x-request-id");
      if (requestId !== null) line.requestId = requestId;
      if (level === "error") line.err = status?.cause ?? status;
      logger[level](line, "call finished");
    };

    let res;
    try {
      res = await next(req);
    } catch (e) {
      finish(e);
      throw e;
    }
    if (!res.stream) {
      finish(undefined);
      return res;
    }
    // A stream ends when its last message is sent, not when the handler returns.
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        let error: unknown;
        try {
          yield* messages;
        } catch (e) {
          error = e;
          throw e;
        } finally {
          finish(error);
        }
      })(),
    };
  };
}
