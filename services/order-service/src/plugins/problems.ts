import { STATUS_CODES, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { AuthError, KeySetUnavailableError, wwwAuthenticate } from "@ecommerce/auth/errors.ts";
import fp from "fastify-plugin";
import { INPUT_LIMITS } from "../config.ts";
import {
  AppError,
  authUnavailable,
  headersTooLarge,
  malformedRequest,
  methodNotAllowed,
  quote,
  requestTimeout,
  routeNotFound,
  unsupportedMediaType,
  type ErrorCode,
  type ProblemFields,
} from "../errors.ts";
import { toFieldErrors } from "../validation.ts";
import { SECURITY_HEADERS } from "./protection.ts";

/** How one error code is answered over HTTP, and what it means to a client. */
export interface ProblemType {
  status: number;
  title: string;
  /** When a client gets it; the OpenAPI `Problem` schema and the README list these. */
  when: string;
  /** Trying again later can succeed: the answer says when, in Retry-After. */
  retryAfter?: true;
}

/**
 * HTTP status, title and meaning of every error code: the one place they are
 * decided. The OpenAPI document's `Problem` schema is built from this table.
 */
export const PROBLEM_TYPES = {
  validation_failed: {
    status: 400,
    title: "The request is invalid",
    when: "A path parameter, query parameter, header or body field is missing or invalid; `errors` names each field as a JSON pointer such as `/body/items/0/quantity`.",
  },
  malformed_json: { status: 400, title: "The body is not valid JSON", when: "The body could not be parsed as JSON." },
  invalid_cursor: {
    status: 400,
    title: "Invalid cursor",
    when: "The `cursor` is not a `next_cursor` this API returned; start again without one.",
  },
  bad_request: {
    status: 400,
    title: "Bad request",
    when: "Any other malformed HTTP request, such as a bad or repeated Content-Length, both Content-Length and chunked encoding, an unknown method or bytes that are not HTTP, or a bad URL encoding.",
  },
  unauthorized: {
    status: 401,
    title: "Authentication required",
    when: "No bearer token, or one that is malformed, expired, not yet valid, or not issued for this API; `WWW-Authenticate` says which (RFC 6750).",
  },
  forbidden: {
    status: 403,
    title: "Not allowed",
    when: "The token is valid but does not allow this: a scope is missing (`WWW-Authenticate` names it), or the request acts for another customer (a `user_id` that is not the token's subject).",
  },
  route_not_found: { status: 404, title: "No such route", when: "No route has this path." },
  method_not_allowed: {
    status: 405,
    title: "Method not allowed",
    when: "The path exists but does not take this method; `Allow` lists the methods it takes.",
  },
  request_timeout: {
    status: 408,
    title: "The request took too long to arrive",
    when: "The client did not send the request head within HEADERS_TIMEOUT_MS, or the whole request within REQUEST_TIMEOUT_MS; the connection is closed.",
  },
  order_not_found: { status: 404, title: "Order not found", when: "No order has this id." },
  product_not_found: { status: 404, title: "Product not found", when: "Inventory knows no product with this id." },
  status_conflict: {
    status: 409,
    title: "The order's status does not allow this",
    when: "The order's current status (`order_status`) does not allow the action.",
  },
  idempotency_key_in_flight: {
    status: 409,
    title: "A request with this Idempotency-Key is in flight",
    when: "An earlier request with the same `Idempotency-Key` is still being processed; retry after `Retry-After` seconds to get its response.",
    retryAfter: true,
  },
  insufficient_stock: {
    status: 409,
    title: "Not enough stock",
    when: "A line asks for more than is available; `unavailable_items` lists every short line and the order is kept as `rejected` (`order_id`).",
  },
  body_too_large: {
    status: 413,
    title: "The body is too large",
    when: "The body is larger than the configured limit (BODY_LIMIT_BYTES).",
  },
  unsupported_media_type: {
    status: 415,
    title: "Unsupported content type",
    when: "A request body that is not `application/json`, or one sent with a `Content-Encoding` (bodies are not decompressed).",
  },
  idempotency_key_reused: {
    status: 422,
    title: "The Idempotency-Key was used for another request",
    when: "The `Idempotency-Key` was already used with a different request (method, path or body) to this endpoint.",
  },
  duplicate_product: {
    status: 422,
    title: "A product appears twice",
    when: "A product appears more than once in `items`; nothing is stored.",
  },
  unknown_product: {
    status: 422,
    title: "Unknown product",
    when: "Inventory does not know a product of the order; the order is kept as `rejected` (`order_id`).",
  },
  order_rejected: {
    status: 422,
    title: "The order was rejected",
    when: "Inventory refused the order otherwise, or its products are priced in different currencies; the order is kept as `rejected` (`order_id`).",
  },
  headers_too_large: {
    status: 431,
    title: "The request head is too large",
    when: "The request line and headers together are larger than MAX_HEADER_BYTES; the connection is closed.",
  },
  rate_limited: {
    status: 429,
    title: "Too many requests",
    when: "This client sent more requests than allowed in the window; retry after `Retry-After` seconds.",
    retryAfter: true,
  },
  internal_error: {
    status: 500,
    title: "Internal error",
    when: "A defect on the server; the cause is logged with the request id and never shown.",
  },
  inventory_unavailable: {
    status: 503,
    title: "Inventory is unavailable",
    when: "Inventory could not be reached or missed its deadline; retry after `Retry-After` seconds. A new order stays `pending` (`order_id`) and is completed in the background.",
    retryAfter: true,
  },
  auth_unavailable: {
    status: 503,
    title: "Tokens cannot be checked",
    when: "The issuer's signing keys (AUTH_JWKS_URL or AUTH_JWKS_FILE) cannot be loaded, so no token can be verified; retry after `Retry-After` seconds.",
    retryAfter: true,
  },
  overloaded: {
    status: 503,
    title: "Too many orders waiting",
    when: "More orders are waiting for a step of placement than the service queues (ORDER_QUEUE_MAX); retry after `Retry-After` seconds. Refused before it is stored, nothing is kept; refused later, the order stays `pending` (`order_id`) and is completed in the background.",
    retryAfter: true,
  },
  database_unavailable: {
    status: 503,
    title: "The orders database is unavailable",
    when: "The orders database cannot be reached right now; retry after `Retry-After` seconds. Nothing was changed by this request unless it said so before.",
    retryAfter: true,
  },
  not_ready: {
    status: 503,
    title: "Not ready",
    when: "Readiness probe: the orders database or inventory does not answer.",
    retryAfter: true,
  },
} as const satisfies Record<ErrorCode, ProblemType>;

/** The protection space named in WWW-Authenticate challenges. */
export const AUTH_REALM = "orders-api";

/** Seconds a client should wait before retrying, unless the cause knows better (the rate limiter does). */
const RETRY_AFTER_SECONDS = 2;

/** Fastify's messages may quote request input (a URL, a header); they are cut to this. */
const MAX_DETAIL_CHARS = 200;

/** Fastify's own request errors, by their code. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: "malformed_json",
  FST_ERR_CTP_EMPTY_JSON_BODY: "malformed_json",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_BODY_TOO_LARGE: "body_too_large",
};

/** An RFC 9457 problem document with this API's extension members. */
export type ProblemDocument = {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
} & ProblemFields;

/** The problem document of a code, as the API renders it. */
export function problem(code: ErrorCode, detail: string, fields: ProblemFields = {}): ProblemDocument {
  const { status, title }: ProblemType = PROBLEM_TYPES[code];
  return { type: `urn:problem-type:ecommerce:${code}`, title, status, detail, code, ...fields };
}

/**
 * Renders every error as an RFC 9457 application/problem+json document,
 * through the route's response schema when it has one. Expected failures
 * carry their code and fields; anything unexpected is logged and answered
 * with a 500 that reveals nothing.
 */
export const problemsPlugin = fp(
  async (app) => {
    app.setErrorHandler((error: FastifyError | AppError | AuthError, request, reply) => sendError(error, request, reply));

    // The methods each path takes, learnt from the routes as they are
    // added, so that a known path with another method is 405 with Allow.
    const paths: { pattern: RegExp; methods: Set<string> }[] = [];
    app.addHook("onRoute", ({ url, method }) => {
      // A catch-all (CORS preflights) says nothing about which paths exist.
      if (url === "*" || url === "/*") return;
      const pattern = routePattern(url);
      let entry = paths.find((p) => p.pattern.source === pattern.source);
      if (!entry) paths.push((entry = { pattern, methods: new Set() }));
      for (const m of Array.isArray(method) ? method : [method]) entry.methods.add(m);
    });

    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split("?")[0] ?? "";
      const allowed = new Set(paths.filter((p) => p.pattern.test(path)).flatMap((p) => [...p.methods]));
      if (allowed.size === 0) return sendError(routeNotFound(request.method, path), request, reply);
      const allow = [...allowed, "OPTIONS"].sort();
      reply.header("allow", allow.join(", "));
      // OPTIONS on a known path answers which methods it takes.
      if (request.method === "OPTIONS") return reply.code(204).send();
      return sendError(methodNotAllowed(request.method, path, allow), request, reply);
    });
  },
  { name: "problems" },
);

/** A route's URL as a pattern of the concrete paths it serves: a `:param` is one segment, `*` the rest. */
function routePattern(url: string): RegExp {
  const source = url
    .split("/")
    .map((segment) =>
      segment.startsWith(":") ? "[^/]+" : segment === "*" ? ".*" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
    )
    .join("/");
  return new RegExp(`^${source}$`);
}

/**
 * Answers an error as a problem document. The app's error handler, and
 * Fastify's `frameworkErrors` (a URL it cannot decode, raised before any
 * route is found), both end here.
 */
export function sendError(error: FastifyError | AppError | AuthError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof AuthError) {
    // RFC 6750: every refusal of a bearer token carries its challenge.
    reply.header("www-authenticate", wwwAuthenticate(error, { realm: AUTH_REALM }));
    return sendProblem(reply, problem(error.code === "insufficient_scope" ? "forbidden" : "unauthorized", error.message));
  }
  if (error instanceof KeySetUnavailableError) {
    // Nobody can be authenticated: an operator must hear of it.
    request.log.error({ err: error }, "the token signing keys cannot be loaded; every authenticated request fails");
    const { message, fields } = authUnavailable();
    return sendProblem(reply, problem("auth_unavailable", message, fields));
  }
  const doc = toProblem(error, request);
  if (doc.code === "internal_error") request.log.error({ err: error }, "request failed");
  return sendProblem(reply, doc);
}

function toProblem(error: FastifyError | AppError, request: FastifyRequest): ProblemDocument {
  if (error instanceof AppError) return problem(error.code, error.message, error.fields);

  if (error.validation) {
    // A body can hold thousands of wrong fields; the answer lists the first few and counts the rest.
    const all = toFieldErrors(error.validationContext ?? "request", error.validation);
    const [first] = all;
    const more = all.length > 1 ? ` (and ${all.length - 1} more)` : "";
    const detail = first ? `${first.field} ${first.message}${more}.` : quote(error.message, MAX_DETAIL_CHARS);
    return problem("validation_failed", detail, { errors: all.slice(0, INPUT_LIMITS.fieldErrors) });
  }

  const code = FASTIFY_CODES[error.code];
  if (code === "unsupported_media_type") return toProblem(unsupportedMediaType(request.headers["content-type"]), request);
  if (code) return problem(code, quote(error.message, MAX_DETAIL_CHARS));

  if (isDatabaseUnavailable(error)) return problem("database_unavailable", "The orders database cannot be reached right now. Retry in a moment.");
  // A PostgreSQL data exception (class 22): a value of the request the
  // database cannot store or compare, such as a date before year 1.
  if ((error as { code?: string }).code?.startsWith("22")) {
    return problem("bad_request", "A value in the request cannot be stored or compared; check dates and text.");
  }

  // Other client errors Fastify raises (bad Content-Length, URL encoding...):
  // their messages are written for clients, but may quote the request.
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return { ...problem("bad_request", quote(error.message, MAX_DETAIL_CHARS)), status };
  return problem("internal_error", "Something went wrong on our side. It has been logged.");
}

// Socket-level failures, and PostgreSQL errors that end the session
// (severity FATAL: shutdown, refused start-up) or say the server cannot take
// the connection now: retrying later can succeed, so they are 503, not 500.
const UNREACHABLE = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "53300", "57P01", "57P02", "57P03"]);
// What pg says of a connection that ended under a query or a transaction,
// and of a pool that could not connect in time.
const UNREACHABLE_MESSAGES = /Connection terminated|not queryable|timeout exceeded when trying to connect/;

function isDatabaseUnavailable(error: Error): boolean {
  const { code, severity } = error as { code?: string; severity?: string };
  return (
    severity === "FATAL" ||
    (code !== undefined && (UNREACHABLE.has(code) || code.startsWith("08"))) ||
    UNREACHABLE_MESSAGES.test(error.message)
  );
}

/**
 * Sends a problem document, with Retry-After when retrying later can
 * succeed, and with the security headers even when helmet's hook did not
 * run (an error raised before routing or by an earlier hook).
 */
export function sendProblem(reply: FastifyReply, doc: ProblemDocument): FastifyReply {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) if (!reply.hasHeader(name)) reply.header(name, value);
  const type: ProblemType = PROBLEM_TYPES[doc.code];
  if (type.retryAfter && !reply.hasHeader("retry-after")) reply.header("retry-after", String(RETRY_AFTER_SECONDS));
  return reply.code(doc.status).type("application/problem+json").send(doc);
}

/** Errors of Node's HTTP parser and server timeouts, by their code; anything else it raises is a malformed request. */
const CLIENT_ERRORS: Record<string, () => AppError> = {
  ERR_HTTP_REQUEST_TIMEOUT: requestTimeout,
  HPE_HEADER_OVERFLOW: headersTooLarge,
};

/**
 * Answers an error of Node's HTTP parser or a request timeout (the server's
 * 'clientError' event, Fastify's `clientErrorHandler`): a malformed request,
 * a head over MAX_HEADER_BYTES, a request too slow to arrive. No request
 * exists yet, so no hook runs: the problem document and the security
 * headers are written to the socket here, and the connection is closed,
 * as the bytes after a malformed request cannot be trusted.
 */
export function clientErrorHandler(this: FastifyInstance, error: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection is gone; there is nobody to answer.
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const { code, message, fields } = (CLIENT_ERRORS[error.code ?? ""] ?? malformedRequest)();
  const doc = problem(code, message, fields);
  this.log.debug({ err: error }, "client error");
  // A response already under way on this connection cannot be interrupted
  // by another one; the connection just ends.
  const underway = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage?.headersSent ?? false;
  if (!socket.writable || underway) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(doc);
  const headers = {
    ...SECURITY_HEADERS,
    "content-type": "application/problem+json; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    connection: "close",
  };
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  socket.end(`HTTP/1.1 ${doc.status} ${STATUS_CODES[doc.status]}\r\n${head}\r\n${body}`, () => socket.destroy());
}
