import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { AppError, type ErrorCode, type ProblemFields } from "../errors.ts";
import { toFieldErrors } from "../validation.ts";

/** HTTP status and title of every error code: the one place they are decided. */
const HTTP: Record<ErrorCode, { status: number; title: string }> = {
  validation_failed: { status: 400, title: "The request is invalid" },
  invalid_json: { status: 400, title: "The body is not valid JSON" },
  bad_request: { status: 400, title: "Bad request" },
  invalid_cursor: { status: 400, title: "Invalid cursor" },
  route_not_found: { status: 404, title: "No such route" },
  order_not_found: { status: 404, title: "Order not found" },
  product_not_found: { status: 404, title: "Product not found" },
  status_conflict: { status: 409, title: "The order's status does not allow this" },
  insufficient_stock: { status: 409, title: "Not enough stock" },
  payload_too_large: { status: 413, title: "The body is too large" },
  unsupported_media_type: { status: 415, title: "Unsupported content type" },
  duplicate_product: { status: 422, title: "A product appears twice" },
  unknown_product: { status: 422, title: "Unknown product" },
  order_rejected: { status: 422, title: "The order was rejected" },
  internal_error: { status: 500, title: "Internal error" },
  inventory_unavailable: { status: 503, title: "Inventory is unavailable" },
  not_ready: { status: 503, title: "Not ready" },
};

/** Seconds a client should wait before retrying after a 503. */
const RETRY_AFTER_SECONDS = 2;

/** Fastify's own request errors, by their code. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_json",
  FST_ERR_CTP_EMPTY_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_BODY_TOO_LARGE: "payload_too_large",
};

/**
 * Renders every error as an RFC 9457 application/problem+json document,
 * through the route's response schema when it has one. Expected failures
 * carry their code and fields; anything unexpected is logged and answered
 * with a 500 that reveals nothing.
 */
export const problemsPlugin = fp(
  async (app) => {
    app.setErrorHandler((error: FastifyError | AppError, request, reply) => {
      const problem = toProblem(error, request);
      if (problem.status >= 500 && problem.code === "internal_error") {
        request.log.error({ err: error }, "request failed");
      }
      return sendProblem(reply, problem);
    });

    app.setNotFoundHandler((request, reply) =>
      sendProblem(reply, {
        ...base("route_not_found"),
        detail: `There is no route ${request.method} ${request.url.split("?")[0]}. The API is described at /openapi.json.`,
      }),
    );
  },
  { name: "problems" },
);

type ProblemDocument = {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
} & ProblemFields;

function base(code: ErrorCode): Omit<ProblemDocument, "detail"> {
  const { status, title } = HTTP[code];
  return { type: `urn:problem-type:ecommerce:${code}`, title, status, code };
}

function toProblem(error: FastifyError | AppError, request: FastifyRequest): ProblemDocument {
  if (error instanceof AppError) return { ...base(error.code), detail: error.message, ...error.fields };

  if (error.validation) {
    const errors = toFieldErrors(error.validationContext ?? "request", error.validation);
    const [first] = errors;
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
    return {
      ...base("validation_failed"),
      detail: first ? `${first.field} ${first.message}${more}.` : error.message,
      errors,
    };
  }

  const code = FASTIFY_CODES[error.code];
  if (code === "unsupported_media_type") {
    const sent = request.headers["content-type"];
    return { ...base(code), detail: `Send the body as application/json${sent ? `, not ${sent}` : ""}.` };
  }
  if (code) return { ...base(code), detail: error.message };

  // Other client errors Fastify raises (bad Content-Length, aborted requests...).
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return { ...base("bad_request"), status, detail: error.message };
  return { ...base("internal_error"), detail: "Something went wrong on our side. It has been logged." };
}

function sendProblem(reply: FastifyReply, problem: ProblemDocument): FastifyReply {
  if (problem.status === 503) reply.header("retry-after", String(RETRY_AFTER_SECONDS));
  return reply.code(problem.status).type("application/problem+json").send(problem);
}
