import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { AppError, type ErrorCode, type ProblemFields } from "../errors.ts";
import { toFieldErrors } from "../validation.ts";

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
    when: "Any other malformed HTTP request, such as a bad Content-Length or URL encoding.",
  },
  route_not_found: { status: 404, title: "No such route", when: "No route matches the method and path." },
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
    when: "A request body that is not `application/json`.",
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

/** Seconds a client should wait before retrying, unless the cause knows better (the rate limiter does). */
const RETRY_AFTER_SECONDS = 2;

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
    app.setErrorHandler((error: FastifyError | AppError, request, reply) => sendError(error, request, reply));

    app.setNotFoundHandler((request, reply) =>
      sendProblem(
        reply,
        problem(
          "route_not_found",
          `There is no route ${request.method} ${request.url.split("?")[0]}. The API is described at /openapi.json.`,
        ),
      ),
    );
  },
  { name: "problems" },
);

/**
 * Answers an error as a problem document. The app's error handler, and
 * Fastify's `frameworkErrors` (a URL it cannot decode, raised before any
 * route is found), both end here.
 */
export function sendError(error: FastifyError | AppError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const doc = toProblem(error, request);
  if (doc.code === "internal_error") request.log.error({ err: error }, "request failed");
  return sendProblem(reply, doc);
}

function toProblem(error: FastifyError | AppError, request: FastifyRequest): ProblemDocument {
  if (error instanceof AppError) return problem(error.code, error.message, error.fields);

  if (error.validation) {
    const errors = toFieldErrors(error.validationContext ?? "request", error.validation);
    const [first] = errors;
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
    return problem("validation_failed", first ? `${first.field} ${first.message}${more}.` : error.message, { errors });
  }

  const code = FASTIFY_CODES[error.code];
  if (code === "unsupported_media_type") {
    const sent = request.headers["content-type"];
    return problem(code, `Send the body as application/json${sent ? `, not ${sent}` : ""}.`);
  }
  if (code) return problem(code, error.message);

  if (isDatabaseUnavailable(error)) return problem("database_unavailable", "The orders database cannot be reached right now. Retry in a moment.");
  // A PostgreSQL data exception (class 22): a value of the request the
  // database cannot store or compare, such as a date before year 1.
  if ((error as { code?: string }).code?.startsWith("22")) {
    return problem("bad_request", "A value in the request cannot be stored or compared; check dates and text.");
  }

  // Other client errors Fastify raises (bad Content-Length, URL encoding...):
  // their messages are written for clients.
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return { ...problem("bad_request", error.message), status };
  return problem("internal_error", "Something went wrong on our side. It has been logged.");
}

// Socket-level failures, and PostgreSQL errors that end the session
// (severity FATAL: shutdown, refused start-up) or say the server cannot take
// the connection now: retrying later can succeed, so they are 503, not 500.
const UNREACHABLE = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "53300", "57P01", "57P02", "57P03"]);

function isDatabaseUnavailable(error: Error): boolean {
  const { code, severity } = error as { code?: string; severity?: string };
  return (
    severity === "FATAL" ||
    (code !== undefined && (UNREACHABLE.has(code) || code.startsWith("08"))) ||
    /Connection terminated|timeout exceeded when trying to connect/.test(error.message)
  );
}

/** Sends a problem document, with Retry-After when retrying later can succeed. */
export function sendProblem(reply: FastifyReply, doc: ProblemDocument): FastifyReply {
  const type: ProblemType = PROBLEM_TYPES[doc.code];
  if (type.retryAfter && !reply.hasHeader("retry-after")) reply.header("retry-after", String(RETRY_AFTER_SECONDS));
  return reply.code(doc.status).type("application/problem+json").send(doc);
}
