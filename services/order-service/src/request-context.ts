import { AsyncLocalStorage } from "node:async_hooks";
import type { Interceptor } from "@connectrpc/connect";
import fp from "fastify-plugin";

/**
 * The id of the request being handled, wherever the handler's work goes
 * (use cases, repositories, inventory calls), without passing it through
 * every signature. Background work runs outside any request and has none.
 */
const requestIds = new AsyncLocalStorage<string>();

/**
 * Runs each route handler, and everything it awaits, in the context of its
 * request id. The context starts at preHandler, after the body is parsed:
 * the body stream's callbacks run outside the request's async context.
 */
export const requestContextPlugin = fp(
  async (app) => {
    app.addHook("preHandler", (request, _reply, done) => requestIds.run(request.id, done));
  },
  { name: "request-context" },
);

/**
 * Connect interceptor that passes the current request id to inventory as the
 * `x-request-id` header, so its log lines of the call name the same id.
 */
export const forwardRequestId: Interceptor = (next) => async (req) => {
  const requestId = requestIds.getStore();
  if (requestId !== undefined && !req.header.has("x-request-id")) req.header.set("x-request-id", requestId);
  return next(req);
};

/** The id of the request whose work is running, if any. */
export function currentRequestId(): string | undefined {
  return requestIds.getStore();
}

/**
 * Runs the work of a batch in the context of the requests it serves: the
 * one request's when it serves one (so its calls to inventory carry the id
 * as they would unbatched), none when it serves several (the calls must not
 * carry the id of whichever request happened to start the batch).
 */
export function forRequests<T>(ids: readonly (string | undefined)[], work: () => T): T {
  const [only] = ids;
  return ids.length === 1 && only !== undefined ? requestIds.run(only, work) : requestIds.exit(work);
}
