import { Type, type TSchema } from "typebox";
import { ORDER_STATUSES } from "../orders/status.ts";

/**
 * TypeBox schemas of the API. They validate requests, serialise responses
 * (fields not in a schema never leave the server) and make the OpenAPI
 * document.
 */

const Uuid = Type.String({ format: "uuid", description: "UUID" });
const Timestamp = Type.String({ format: "date-time" });
const Currency = Type.String({ minLength: 3, maxLength: 3, description: "ISO 4217 code, such as USD" });
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const OrderStatus = Type.Enum([...ORDER_STATUSES], { type: "string" });

export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false });

export const PlaceOrderBody = Type.Object(
  {
    user_id: Type.String({ minLength: 1, maxLength: 128, description: "Who places the order" }),
    items: Type.Array(
      Type.Object(
        {
          product_id: Uuid,
          quantity: Type.Integer({ minimum: 1, maximum: 1000 }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 100, description: "Each product at most once" },
    ),
  },
  { additionalProperties: false },
);

export const OrderItem = Type.Object({
  product_id: Uuid,
  quantity: Type.Integer(),
  unit_price_minor: Nullable(Type.Integer({ description: "Unit price in minor units, captured at reservation" })),
  line_total_minor: Nullable(Type.Integer()),
  currency: Nullable(Currency),
});

export const Order = Type.Object({
  id: Uuid,
  user_id: Type.String(),
  status: OrderStatus,
  items: Type.Array(OrderItem),
  total_minor: Nullable(Type.Integer({ description: "Sum of the line totals in minor units; null until confirmed" })),
  currency: Nullable(Currency),
  rejection_reason: Nullable(Type.String()),
  created_at: Timestamp,
  updated_at: Timestamp,
});

/** Page size when a list request names none. */
export const DEFAULT_PAGE_SIZE = 20;
const Limit = Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_PAGE_SIZE });

export const ListOrdersQuery = Type.Object(
  {
    user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    status: Type.Optional(OrderStatus),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: "next_cursor of the previous page" })),
  },
  { additionalProperties: false },
);

export const OrderPage = Type.Object({
  data: Type.Array(Order),
  next_cursor: Nullable(Type.String({ description: "Pass as cursor for the next page; null on the last page" })),
});

export const Product = Type.Object({
  id: Uuid,
  sku: Type.String(),
  name: Type.String(),
  description: Type.String(),
  price_minor: Type.Integer(),
  currency: Currency,
  stock: Type.Object({
    on_hand: Type.Integer(),
    reserved: Type.Integer(),
    available: Type.Integer(),
  }),
  created_at: Nullable(Timestamp),
  updated_at: Nullable(Timestamp),
});

export const ListProductsQuery = Type.Object(
  {
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
  },
  { additionalProperties: false },
);

export const ProductPage = Type.Object({
  data: Type.Array(Product),
  next_cursor: Nullable(Type.String()),
});

/** An RFC 9457 problem document with this API's extension members. */
export const Problem = Type.Object(
  {
    type: Type.String({ description: "URI of the problem type" }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: "Stable machine-readable error code" }),
    order_id: Type.Optional(Uuid),
    product_id: Type.Optional(Uuid),
    order_status: Type.Optional(OrderStatus),
    unavailable_items: Type.Optional(
      Type.Array(Type.Object({ product_id: Uuid, requested: Type.Integer(), available: Type.Integer() })),
    ),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
);

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: "The request is invalid (code validation_failed, invalid_json or invalid_cursor)",
  404: "Not found",
  409: "Conflicts with the order's state or the stock",
  413: "The body is too large",
  415: "The body is not application/json",
  422: "Well formed, but the order cannot be taken",
  500: "Internal error (details are logged, not shown)",
  503: "A dependency is unavailable; retry after the Retry-After header",
};

/** A problem response, as application/problem+json. */
interface ProblemResponse {
  description: string;
  content: { "application/problem+json": { schema: typeof Problem } };
}

/** Response schemas for the given error statuses, all problem documents. */
export function problems<const S extends number>(...statuses: S[]): Record<S, ProblemResponse> {
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      { description: PROBLEM_DESCRIPTIONS[s] ?? "Problem", content: { "application/problem+json": { schema: Problem } } },
    ]),
  ) as Record<S, ProblemResponse>;
}

export const Health = Type.Object({ status: Type.String() });
