import { Type, type Static, type TSchema, type TUnsafe } from "typebox";
import {
  AppError,
  authUnavailable,
  duplicateProduct,
  forbidden,
  headersTooLarge,
  idempotencyKeyInFlight,
  idempotencyKeyReused,
  insufficientStock,
  inventoryUnavailable,
  overloaded,
  invalidCursor,
  methodNotAllowed,
  orderNotFound,
  orderRejected,
  productNotFound,
  rateLimited,
  requestTimeout,
  routeNotFound,
  statusConflict,
  unauthorized,
  unknownProduct,
  unsupportedMediaType,
  type ErrorCode,
} from "../errors.ts";
import type { Scope } from "@ecommerce/auth/scopes.ts";
import { INPUT_LIMITS } from "../config.ts";
import { EVENT_SOURCE, ORDER_EVENT_TYPES } from "../orders/events.ts";
import { ORDER_STATUSES } from "../orders/status.ts";
import { PROBLEM_TYPES, problem, type ProblemType } from "../plugins/problems.ts";

/**
 * TypeBox schemas of the API. They validate requests, serialise responses
 * (fields not in a schema never leave the server) and make the OpenAPI
 * document, examples included. Response bodies are shared components
 * (`app.addSchema`), referenced by `$ref`, so generated clients get one named
 * type for each.
 */

const components: TSchema[] = [];

/**
 * Declares `schema` as the shared component `name` and returns a `$ref` to
 * it, typed as the schema so handlers stay type-checked.
 */
function component<T extends TSchema>(name: string, schema: T): TUnsafe<Static<T>> {
  components.push({ ...schema, $id: name });
  return Type.Unsafe<Static<T>>(Type.Ref(name));
}

/** Ids the examples use: the seeded sample products and an order of two of them. */
const LAPTOP_ID = "00000000-0000-4000-8000-000000000001";
const EARBUDS_ID = "00000000-0000-4000-8000-000000000005";
const EXAMPLE_ORDER_ID = "01a21155-101f-779c-ab8a-6cfb09eec079";

const Uuid = Type.String({ format: "uuid" });
/** PostgreSQL text cannot hold U+0000. */
const NO_NUL = "^[^\\u0000]*$";
const Timestamp = Type.String({ format: "date-time", description: "RFC 3339 date-time" });
const Currency = Type.String({ minLength: 3, maxLength: 3, description: "ISO 4217 code", examples: ["USD"] });
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const OrderStatus = Type.Enum([...ORDER_STATUSES], { type: "string", description: "Status of the order" });

const UserId = (description: string, examples?: string[]) =>
  Type.String({ minLength: 1, maxLength: INPUT_LIMITS.userIdChars, pattern: NO_NUL, description, ...(examples ? { examples } : {}) });

/**
 * X-Request-Id as the API accepts it: 1 to 128 visible ASCII characters. A
 * request without one, or with another value, gets a new UUID; either way
 * the response echoes it.
 */
export const RequestId = Type.String({
  pattern: `^[\\x21-\\x7E]{1,${INPUT_LIMITS.requestIdChars}}$`,
  description:
    "Correlation id: 1 to 128 visible ASCII characters. Sent back in the response and in every log line of the request, and passed on to inventory; a missing or invalid one is replaced by a new UUID.",
  examples: ["4bf92f3577b34da6a3ce929d0e0e4736"],
});

export const OrderIdParams = Type.Object(
  { id: Type.String({ format: "uuid", description: "Order id", examples: [EXAMPLE_ORDER_ID] }) },
  { additionalProperties: false },
);

export const ProductIdParams = Type.Object(
  { id: Type.String({ format: "uuid", description: "Product id", examples: [LAPTOP_ID] }) },
  { additionalProperties: false },
);

/** Request headers of the state-changing routes. */
export const IdempotencyHeaders = Type.Object({
  "idempotency-key": Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: INPUT_LIMITS.idempotencyKeyChars,
      description:
        "Makes retries safe: the first response to a key is stored and replayed for the same request; the same key with a different request is refused.",
      examples: ["5d0f7a4e-6c1b-4f2e-9a57-1f3f0b7c2d91"],
    }),
  ),
});

export const PlaceOrderBody = Type.Object(
  {
    user_id: Type.Optional(
      UserId(
        "Optional: the order is always placed for the caller, the token's subject. When present it must equal the subject (else 403 forbidden).",
      ),
    ),
    items: Type.Array(
      Type.Object(
        {
          product_id: Type.String({ format: "uuid" }),
          quantity: Type.Integer({ minimum: 1, maximum: INPUT_LIMITS.quantityPerLine }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: INPUT_LIMITS.itemsPerOrder, description: `Each product at most once; at most ${INPUT_LIMITS.itemsPerOrder} lines` },
    ),
  },
  {
    additionalProperties: false,
    examples: [
      {
        items: [
          { product_id: LAPTOP_ID, quantity: 1 },
          { product_id: EARBUDS_ID, quantity: 2 },
        ],
      },
    ],
  },
);

const EXAMPLE_ORDER = {
  id: EXAMPLE_ORDER_ID,
  user_id: "alice",
  status: "confirmed",
  items: [
    { product_id: LAPTOP_ID, quantity: 1, unit_price_minor: 149999, line_total_minor: 149999, currency: "USD" },
    { product_id: EARBUDS_ID, quantity: 2, unit_price_minor: 9999, line_total_minor: 19998, currency: "USD" },
  ],
  total_minor: 169997,
  currency: "USD",
  rejection_reason: null,
  created_at: "2026-11-25T06:11:57.090Z",
  updated_at: "2026-11-25T06:11:57.111Z",
};

export const Order = component(
  "Order",
  Type.Object(
    {
      id: Type.String({ format: "uuid", description: "UUIDv7" }),
      user_id: Type.String(),
      status: OrderStatus,
      items: Type.Array(
        Type.Object({
          product_id: Uuid,
          quantity: Type.Integer(),
          unit_price_minor: Nullable(
            Type.Integer({ description: "Unit price in minor units, captured at reservation; null until confirmed" }),
          ),
          line_total_minor: Nullable(Type.Integer({ description: "unit_price_minor × quantity" })),
          currency: Nullable(Currency),
        }),
      ),
      total_minor: Nullable(Type.Integer({ description: "Sum of the line totals in minor units; null until confirmed" })),
      currency: Nullable(Currency),
      rejection_reason: Nullable(Type.String({ description: "Why the order was rejected" })),
      created_at: Timestamp,
      updated_at: Timestamp,
    },
    { description: "An order with its lines; prices are inventory's, captured when the stock was reserved", examples: [EXAMPLE_ORDER] },
  ),
);

/** Page size when a list request names none. */
export const DEFAULT_PAGE_SIZE = 20;
const Limit = Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_PAGE_SIZE, description: "Page size" });
const Cursor = Type.String({
  minLength: 1,
  maxLength: INPUT_LIMITS.cursorChars,
  description: "`next_cursor` of the previous page; omit for the first page",
});
const NextCursor = Nullable(
  Type.String({ description: "Pass as `cursor` to get the next page; null on the last page" }),
);

export const ListOrdersQuery = Type.Object(
  {
    user_id: Type.Optional(
      UserId(
        "Only this customer's orders. Customers see only their own orders whatever the filter (naming another customer is 403); with `orders:read_all` any customer.",
        ["alice"],
      ),
    ),
    status: Type.Optional(OrderStatus),
    created_after: Type.Optional(
      Type.String({
        format: "date-time",
        maxLength: INPUT_LIMITS.dateTimeChars,
        description: "Only orders created at or after this RFC 3339 date-time",
        examples: ["2026-11-01T00:00:00Z"],
      }),
    ),
    created_before: Type.Optional(
      Type.String({
        format: "date-time",
        maxLength: INPUT_LIMITS.dateTimeChars,
        description: "Only orders created before this RFC 3339 date-time; not earlier than created_after",
        examples: ["2026-12-01T00:00:00Z"],
      }),
    ),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);

export const OrderPage = component(
  "OrderPage",
  Type.Object(
    { data: Type.Array(Order), next_cursor: NextCursor },
    {
      description: "A page of orders, newest first",
      examples: [
        {
          data: [EXAMPLE_ORDER],
          next_cursor: "bzIgMjAyNi0xMS0yNVQwNjoxMTo1Ny4wOTAxMjNaIDAxYTIxMTU1LTEwMWYtNzc5Yy1hYjhhLTZjZmIwOWVlYzA3OQ",
        },
      ],
    },
  ),
);

const EXAMPLE_PRODUCT = {
  id: LAPTOP_ID,
  sku: "LAPTOP-GAMING",
  name: "Laptop Gaming",
  description: "15.6-inch gaming laptop with a dedicated graphics card",
  price_minor: 149999,
  currency: "USD",
  stock: { on_hand: 50, reserved: 1, available: 49 },
  created_at: "2026-11-25T06:00:00.000Z",
  updated_at: "2026-11-25T06:11:57.101Z",
};

export const Product = component(
  "Product",
  Type.Object(
    {
      id: Uuid,
      sku: Type.String(),
      name: Type.String(),
      description: Type.String(),
      price_minor: Type.Integer({ description: "Unit price in minor units" }),
      currency: Currency,
      stock: Type.Object({
        on_hand: Type.Integer({ description: "Units in the warehouse" }),
        reserved: Type.Integer({ description: "Units held for orders" }),
        available: Type.Integer({ description: "on_hand − reserved: what can be ordered now" }),
      }),
      created_at: Nullable(Timestamp),
      updated_at: Nullable(Timestamp),
    },
    { description: "A product of the catalogue with its stock, as inventory reports it", examples: [EXAMPLE_PRODUCT] },
  ),
);

export const ListProductsQuery = Type.Object(
  { limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) },
  { additionalProperties: false },
);

export const ProductPage = component(
  "ProductPage",
  Type.Object(
    { data: Type.Array(Product), next_cursor: NextCursor },
    {
      description: "A page of the catalogue, by SKU",
      examples: [{ data: [EXAMPLE_PRODUCT], next_cursor: "eyJhZnRlciI6IkxBUFRPUC1HQU1JTkcifQ" }],
    },
  ),
);

/** Page size of the event listing when a request names none, and the most one page holds. */
export const DEFAULT_EVENT_PAGE_SIZE = 100;
export const MAX_EVENT_PAGE_SIZE = 500;

export const OrderEventType = Type.Enum([...ORDER_EVENT_TYPES], { type: "string", description: "Type of the event (ce-type, and its NATS subject)" });

export const ListEventsQuery = Type.Object(
  {
    cursor: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: INPUT_LIMITS.cursorChars,
        description: "`next_cursor` of an earlier page: the events recorded after it; omit to start from the oldest event kept",
      }),
    ),
    type: Type.Optional(OrderEventType),
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_EVENT_PAGE_SIZE, default: DEFAULT_EVENT_PAGE_SIZE, description: "Page size" }),
    ),
  },
  { additionalProperties: false },
);

/** orders.v1.OrderStatus in the proto3 JSON mapping: the enum value's name. */
const EventOrderStatus = (description: string) =>
  Type.Enum(
    ORDER_STATUSES.map((status) => `ORDER_STATUS_${status.toUpperCase()}`),
    { type: "string", description: `${description} (orders.v1.OrderStatus, by name)` },
  );
/** An int64 in the proto3 JSON mapping: a decimal string. */
const Int64 = (description: string) => Type.String({ pattern: "^-?[0-9]+$", description: `${description} (int64, as a decimal string)` });
const ProtoTimestamp = Type.String({ format: "date-time", description: "google.protobuf.Timestamp: RFC 3339 in UTC" });

const EXAMPLE_EVENT = {
  specversion: "1.0",
  id: "3f0c8f5e-8a2b-4d8e-9c1a-7b6e5d4c3b2a",
  source: EVENT_SOURCE,
  type: "orders.v1.order.confirmed",
  subject: EXAMPLE_ORDER_ID,
  time: "2026-11-25T06:11:57.111Z",
  datacontenttype: "application/json",
  data: {
    order: {
      id: EXAMPLE_ORDER_ID,
      userId: "alice",
      status: "ORDER_STATUS_CONFIRMED",
      lines: [
        { productId: LAPTOP_ID, quantity: 1, unitPriceMinor: "149999", currency: "USD" },
        { productId: EARBUDS_ID, quantity: 2, unitPriceMinor: "9999", currency: "USD" },
      ],
      totalMinor: "169997",
      currency: "USD",
      createTime: "2026-11-25T06:11:57.090123Z",
      updateTime: "2026-11-25T06:11:57.111000Z",
    },
  },
};

export const OrderEvent = component(
  "OrderEvent",
  Type.Object(
    {
      specversion: Type.Literal("1.0", { description: "CloudEvents version" }),
      id: Type.String({ format: "uuid", description: "Unique per event; the same id whenever it is delivered (NATS Msg-Id), for deduplication" }),
      source: Type.Literal(EVENT_SOURCE, { description: "The service that recorded it" }),
      type: OrderEventType,
      subject: Type.String({ format: "uuid", description: "The order id: the events of one order are in the order of its changes" }),
      time: Timestamp,
      datacontenttype: Type.Literal("application/json"),
      data: Type.Object(
        {
          order: Type.Object(
            {
              id: Type.String({ format: "uuid" }),
              userId: Type.String(),
              status: EventOrderStatus("Its status after the change"),
              lines: Type.Optional(
                Type.Array(
                  Type.Object({
                    productId: Uuid,
                    quantity: Type.Integer(),
                    unitPriceMinor: Type.Optional(Int64("Unit price in minor units; absent until the order is confirmed")),
                    currency: Type.Optional(Type.String({ description: "ISO 4217 code of the price; absent until confirmed" })),
                  }),
                  { description: "The lines, by product id" },
                ),
              ),
              totalMinor: Type.Optional(Int64("Sum of the line totals in minor units; absent until the order is confirmed")),
              currency: Type.Optional(Type.String({ description: "ISO 4217 code of the total; absent until confirmed" })),
              rejectionReason: Type.Optional(Type.String({ description: "Why the order was rejected; absent unless it was" })),
              createTime: ProtoTimestamp,
              updateTime: ProtoTimestamp,
            },
            { description: "orders.v1.Order: the order as the change left it" },
          ),
          previousStatus: Type.Optional(EventOrderStatus("For orders.v1.order.cancelled: the status it was cancelled from")),
        },
        {
          description:
            "The event message (orders.v1.OrderPlaced, OrderConfirmed, OrderRejected, OrderCancelled or OrderFulfilled, by `type`) in the proto3 JSON mapping: lowerCamelCase names, enums by name, int64 as strings, fields without a value left out. `fromJson` of any protobuf library reads it.",
        },
      ),
    },
    {
      description:
        "A recorded order event in the CloudEvents 1.0 JSON format: one per change of an order's status (placed, confirmed, rejected, cancelled, fulfilled), recorded in the same transaction as the change.",
      examples: [EXAMPLE_EVENT],
    },
  ),
);

export const EventPage = component(
  "EventPage",
  Type.Object(
    {
      data: Type.Array(OrderEvent),
      next_cursor: Type.String({
        description: "Always set: pass as `cursor` for the next page, or later to get only the events recorded since (poll with it)",
      }),
    },
    {
      description: "A page of order events, oldest first (in the order their changes committed)",
      examples: [{ data: [EXAMPLE_EVENT], next_cursor: "NzY1LjEyMzQ" }],
    },
  ),
);

export const Readiness = component(
  "Readiness",
  Type.Object(
    {
      status: Type.Literal("ready"),
      events: Type.Object(
        {
          publishing: Type.Boolean({ description: "Whether events are published to NATS (NATS_URL is set); either way they are recorded" }),
          unpublished: Type.Optional(
            Type.Integer({ minimum: 0, description: "Events recorded and not yet published, counted up to 10,000; absent when the outbox could not be read" }),
          ),
          oldest_unpublished_age_seconds: Type.Optional(
            Nullable(Type.Number({ minimum: 0, description: "Age of the oldest unpublished event; null when there is none" })),
          ),
        },
        { description: "The outbox of order events: never a reason to be unready, shown so that a lagging publisher is seen" },
      ),
    },
    {
      description: "Readiness: the orders database and inventory answer",
      examples: [{ status: "ready", events: { publishing: false, unpublished: 42, oldest_unpublished_age_seconds: 3.5 } }],
    },
  ),
);

export const Health = component(
  "Health",
  Type.Object({ status: Type.String({ examples: ["ok"] }) }, { description: "Probe result" }),
);

const CODE_LIST = (Object.keys(PROBLEM_TYPES) as ErrorCode[])
  .map((code) => `- \`${code}\` (${PROBLEM_TYPES[code].status}): ${PROBLEM_TYPES[code].when}`)
  .join("\n");

export const Problem = component(
  "Problem",
  Type.Object(
    {
      type: Type.String({ description: "URI of the problem type, `urn:problem-type:ecommerce:<code>`" }),
      title: Type.String({ description: "Short summary of the problem type" }),
      status: Type.Integer({ description: "HTTP status code" }),
      detail: Type.String({ description: "What went wrong this time, for people" }),
      code: Type.Enum(Object.keys(PROBLEM_TYPES) as ErrorCode[], {
        type: "string",
        description: "Stable machine-readable error code",
      }),
      order_id: Type.Optional(Type.String({ format: "uuid", description: "The order concerned" })),
      product_id: Type.Optional(Type.String({ format: "uuid", description: "The product concerned" })),
      order_status: Type.Optional(OrderStatus),
      unavailable_items: Type.Optional(
        Type.Array(
          Type.Object({ product_id: Uuid, requested: Type.Integer(), available: Type.Integer() }),
          { description: "Every short line, for insufficient_stock" },
        ),
      ),
      errors: Type.Optional(
        Type.Array(
          Type.Object({
            field: Type.String({ description: "JSON pointer into the request, such as /body/items/0/quantity" }),
            message: Type.String(),
          }),
          { description: "Every invalid field, for validation_failed" },
        ),
      ),
    },
    {
      description: `An RFC 9457 problem document (application/problem+json). \`code\` is stable; programs branch on it. The codes:\n\n${CODE_LIST}`,
    },
  ),
);

/** Every shared component schema, for `app.addSchema`. */
export const COMPONENT_SCHEMAS: readonly TSchema[] = components;

/** One example error of each code, rendered the way the API renders it. */
const EXAMPLE_ERRORS: Record<ErrorCode, AppError> = {
  validation_failed: new AppError("validation_failed", "/body/items/0/quantity must be >= 1.", {
    errors: [{ field: "/body/items/0/quantity", message: "must be >= 1" }],
  }),
  malformed_json: new AppError("malformed_json", "Body is not valid JSON but content-type is set to 'application/json'"),
  invalid_cursor: invalidCursor(),
  unauthorized: unauthorized("the token has expired"),
  forbidden: forbidden("this operation needs the scope orders:fulfil"),
  bad_request: new AppError("bad_request", "Request body size did not match Content-Length"),
  route_not_found: routeNotFound("GET", "/api/v2/orders"),
  method_not_allowed: methodNotAllowed("DELETE", `/api/v1/orders/${EXAMPLE_ORDER_ID}`, ["GET", "HEAD", "OPTIONS"]),
  request_timeout: requestTimeout(),
  headers_too_large: headersTooLarge(),
  order_not_found: orderNotFound(EXAMPLE_ORDER_ID),
  product_not_found: productNotFound(LAPTOP_ID),
  status_conflict: statusConflict(EXAMPLE_ORDER_ID, "fulfilled", "cancelled"),
  idempotency_key_in_flight: idempotencyKeyInFlight("5d0f7a4e-6c1b-4f2e-9a57-1f3f0b7c2d91"),
  idempotency_key_reused: idempotencyKeyReused("5d0f7a4e-6c1b-4f2e-9a57-1f3f0b7c2d91"),
  insufficient_stock: insufficientStock(EXAMPLE_ORDER_ID, [{ product_id: LAPTOP_ID, requested: 1000, available: 49 }]),
  body_too_large: new AppError("body_too_large", "Request body is too large"),
  unsupported_media_type: unsupportedMediaType("text/plain"),
  duplicate_product: duplicateProduct(LAPTOP_ID),
  unknown_product: unknownProduct(
    EXAMPLE_ORDER_ID,
    "product 0190c0de-0000-7000-8000-000000000000 does not exist",
  ),
  order_rejected: orderRejected(EXAMPLE_ORDER_ID, "its products are priced in different currencies (EUR, USD)"),
  rate_limited: rateLimited(42),
  internal_error: new AppError("internal_error", "Something went wrong on our side. It has been logged."),
  database_unavailable: new AppError("database_unavailable", "The orders database cannot be reached right now. Retry in a moment."),
  inventory_unavailable: inventoryUnavailable(EXAMPLE_ORDER_ID),
  overloaded: overloaded(),
  auth_unavailable: authUnavailable(),
  not_ready: new AppError("not_ready", "Not ready: inventory does not answer."),
};

/** A response header: its JSON schema, whose description @fastify/swagger lifts onto the header. */
type HeaderSchema = { type: "string" | "integer"; description: string };

const RATE_LIMIT_HEADERS: Record<string, HeaderSchema> = {
  "x-ratelimit-limit": { type: "integer", description: "Requests allowed per window" },
  "x-ratelimit-remaining": { type: "integer", description: "Requests left in this window" },
  "x-ratelimit-reset": { type: "integer", description: "Seconds until the window resets" },
};

/** Response header of the state-changing routes (see IdempotencyHeaders). */
export const REPLAYED_HEADER: Record<string, HeaderSchema> = {
  "idempotent-replayed": {
    type: "string",
    description: "`true` when this is the stored response to an earlier request with the same Idempotency-Key",
  },
};

/** A problem response: its media type, the shared Problem schema, examples and headers. */
interface ProblemResponse {
  description: string;
  headers?: Record<string, HeaderSchema>;
  content: {
    "application/problem+json": { schema: typeof Problem; examples: Record<string, { value: unknown }> };
  };
}

/**
 * The problem responses of a route, one per HTTP status of the given codes,
 * each describing and exemplifying its codes.
 */
export function problems<const C extends ErrorCode>(
  ...codes: C[]
): Record<(typeof PROBLEM_TYPES)[C]["status"], ProblemResponse> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const { status } = PROBLEM_TYPES[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<number, ProblemResponse> = {};
  for (const [status, ofStatus] of byStatus) {
    const retrying = ofStatus.filter((code) => (PROBLEM_TYPES[code] as ProblemType).retryAfter);
    const only = retrying.length < ofStatus.length ? ` (with ${retrying.join(", ")})` : "";
    const headers = {
      ...(retrying.length > 0
        ? { "retry-after": { type: "integer", description: `Seconds to wait before retrying${only}` } as HeaderSchema }
        : {}),
      ...(status === 429 ? RATE_LIMIT_HEADERS : {}),
    };
    responses[status] = {
      description: ofStatus.map((code) => `\`${code}\`: ${PROBLEM_TYPES[code].when}`).join("\n\n"),
      ...(Object.keys(headers).length > 0 ? { headers } : {}),
      content: {
        "application/problem+json": {
          schema: Problem,
          examples: Object.fromEntries(
            ofStatus.map((code) => {
              const { message, fields } = EXAMPLE_ERRORS[code];
              return [code, { value: problem(code, message, fields) }];
            }),
          ),
        },
      },
    };
  }
  return responses;
}

/** The OpenAPI security schemes (plugins/openapi.ts names them). */
export const BEARER_SCHEME = "bearerAuth";
export const OAUTH2_SCHEME = "oauth2";

/**
 * An operation's `security`: a bearer JWT for orders-api, holding `scopes`
 * (none for what customers do for themselves), from any issuer flow.
 */
export function secured(...scopes: Scope[]): Record<string, Scope[]>[] {
  return [{ [BEARER_SCHEME]: scopes }, { [OAUTH2_SCHEME]: scopes }];
}

/** The refusals every authenticated operation can answer: no valid token, or not allowed. */
export const AUTH_PROBLEMS = ["unauthorized", "forbidden", "auth_unavailable"] as const;

/** A JSON success response: the schema, a description and optional response headers. */
export function json<T extends TSchema>(
  description: string,
  schema: T,
  headers?: Record<string, HeaderSchema>,
) {
  return { description, ...(headers ? { headers } : {}), content: { "application/json": { schema } } };
}
