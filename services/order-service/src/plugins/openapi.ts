import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { ORDERS_CANCEL_ANY, ORDERS_FULFIL, ORDERS_READ_ALL } from "@ecommerce/auth/scopes.ts";
import fp from "fastify-plugin";
import { BEARER_SCHEME, OAUTH2_SCHEME, RequestId } from "../routes/schemas.ts";

const DESCRIPTION = `Orders of the e-commerce core: place orders for products with limited stock, read, list, cancel and fulfil them, and browse the catalogue with its availability (read from the inventory service).

Conventions:
- JSON in and out. Bodies must be \`application/json\` (else 415); unknown fields are refused.
- Money is integer minor units with an ISO 4217 \`currency\` (149999 USD = 1,499.99 USD).
- Errors are RFC 9457 problem documents (\`application/problem+json\`, schema \`Problem\`) with a stable \`code\`.
- Lists page with \`limit\` (1-100, default 20; events 1-500, default 100) and an opaque \`cursor\`, answering \`{ data, next_cursor }\`.
- Every response carries \`X-Request-Id\`: the caller's when it sends a valid one, else a new UUID.
- Every \`/api/v1\` operation needs an OAuth 2.0 bearer JWT for the audience \`orders-api\` (\`Authorization: Bearer <token>\`); without a valid one it is 401 with a \`WWW-Authenticate\` challenge. A customer is the token's subject and sees, places and cancels only their own orders (another customer's order is 404). Staff scopes widen that: \`orders:read_all\`, \`orders:cancel_any\`, \`orders:fulfil\` (required to fulfil). A missing scope is 403. In Swagger UI, paste a token under Authorize (bearerAuth).
- Requests are rate limited per caller (the token's subject, else the address); a 429 says when to retry.
- The state-changing POSTs take an \`Idempotency-Key\` header so retries are safe.`;

/**
 * The OpenAPI 3.1 document, generated from the route schemas, at
 * /openapi.json, and Swagger UI at /docs. Register before the routes so it
 * sees them, and after the shared schemas are added so they become
 * `components.schemas` under their own names.
 */
export const openApiPlugin = fp<{ tokenUrl: string | undefined }>(
  async (app, { tokenUrl }) => {
    await app.register(swagger, {
      openapi: {
        openapi: "3.1.0",
        info: { title: "Order service", description: DESCRIPTION, version: "1.0.0" },
        tags: [
          { name: "orders", description: "Place, read, list, cancel and fulfil orders" },
          { name: "products", description: "The catalogue with availability, from inventory" },
          { name: "events", description: "The order events, as recorded in the outbox (CloudEvents)" },
          { name: "health", description: "Liveness and readiness probes" },
        ],
        components: { securitySchemes: securitySchemes(tokenUrl) },
      },
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`),
      },
      transformObject: (document) => {
        if (!("openapiObject" in document)) throw new Error("the document is OpenAPI 3, not Swagger 2");
        return withRequestIdHeader(document.openapiObject as Document);
      },
    });
    // A token pasted under Authorize is kept across reloads of the page.
    await app.register(swaggerUi, {
      routePrefix: "/docs",
      uiConfig: { deepLinking: true, displayOperationId: true, persistAuthorization: true },
    });
    app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  },
  { name: "openapi" },
);

/** The staff scopes of this API and what each permits; customers need none. */
const ORDER_SCOPES = {
  [ORDERS_READ_ALL]: "Staff: read and list every customer's orders, and the order events",
  [ORDERS_FULFIL]: "Staff: fulfil orders",
  [ORDERS_CANCEL_ANY]: "Staff: cancel any customer's order",
};

/**
 * The ways to present a token: a bearer JWT got anywhere (paste it in
 * Swagger UI), or the client-credentials grant at the issuer's token
 * endpoint. Customers need no scope; staff scopes are listed.
 */
function securitySchemes(tokenUrl: string | undefined) {
  return {
    [BEARER_SCHEME]: {
      type: "http" as const,
      scheme: "bearer",
      bearerFormat: "JWT",
      description: "An access token (JWT) for the audience `orders-api`; its subject is the customer, its `scope` claim the staff scopes.",
    },
    [OAUTH2_SCHEME]: {
      type: "oauth2" as const,
      description: "The issuer's client-credentials grant, for staff tools and services.",
      flows: {
        clientCredentials: {
          tokenUrl: tokenUrl ?? "https://issuer.example.com/oauth/token",
          scopes: ORDER_SCOPES,
        },
      },
    },
  };
}

type Operation = { parameters?: unknown[]; responses?: Record<string, { headers?: Record<string, unknown> }> };
type Document = { components?: Record<string, unknown>; paths?: Record<string, Record<string, Operation>> };

/**
 * X-Request-Id is handled once for every route (app.ts), not by each route's
 * schema: this adds it to every operation as a request header and to every
 * response, as shared components.
 */
function withRequestIdHeader(document: Document): Document {
  const { description, ...schema } = RequestId as typeof RequestId & { description: string };
  const components = {
    ...document.components,
    parameters: { RequestId: { name: "x-request-id", in: "header", required: false, description, schema } },
    headers: {
      RequestId: { description: "The request's id (see the X-Request-Id request header)", required: true, schema },
    },
  };
  const paths: Record<string, Record<string, Operation>> = {};
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    paths[path] = {};
    for (const [method, operation] of Object.entries(item)) {
      paths[path][method] = {
        ...operation,
        parameters: [...(operation.parameters ?? []), { $ref: "#/components/parameters/RequestId" }],
        responses: Object.fromEntries(
          Object.entries(operation.responses ?? {}).map(([status, response]) => [
            status,
            { ...response, headers: { ...response.headers, "x-request-id": { $ref: "#/components/headers/RequestId" } } },
          ]),
        ),
      };
    }
  }
  return { ...document, components, paths };
}
