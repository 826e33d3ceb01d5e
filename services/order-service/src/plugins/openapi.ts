import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import fp from "fastify-plugin";
import { RequestId } from "../routes/schemas.ts";

const DESCRIPTION = `Orders of the e-commerce core: place orders for products with limited stock, read, list, cancel and fulfil them, and browse the catalogue with its availability (read from the inventory service).

Conventions:
- JSON in and out. Bodies must be \`application/json\` (else 415); unknown fields are refused.
- Money is integer minor units with an ISO 4217 \`currency\` (149999 USD = 1,499.99 USD).
- Errors are RFC 9457 problem documents (\`application/problem+json\`, schema \`Problem\`) with a stable \`code\`.
- Lists page with \`limit\` (1-100, default 20) and an opaque \`cursor\`, answering \`{ data, next_cursor }\`.
- Every response carries \`X-Request-Id\`: the caller's when it sends a valid one, else a new UUID.
- Requests are rate limited per client; a 429 says when to retry.
- The state-changing POSTs take an \`Idempotency-Key\` header so retries are safe.`;

/**
 * The OpenAPI 3.1 document, generated from the route schemas, at
 * /openapi.json, and Swagger UI at /docs. Register before the routes so it
 * sees them, and after the shared schemas are added so they become
 * `components.schemas` under their own names.
 */
export const openApiPlugin = fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        openapi: "3.1.0",
        info: { title: "Order service", description: DESCRIPTION, version: "1.0.0" },
        tags: [
          { name: "orders", description: "Place, read, list, cancel and fulfil orders" },
          { name: "products", description: "The catalogue with availability, from inventory" },
          { name: "health", description: "Liveness and readiness probes" },
        ],
      },
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`),
      },
      transformObject: (document) => {
        if (!("openapiObject" in document)) throw new Error("the document is OpenAPI 3, not Swagger 2");
        return withRequestIdHeader(document.openapiObject as Document);
      },
    });
    await app.register(swaggerUi, { routePrefix: "/docs", uiConfig: { deepLinking: true, displayOperationId: true } });
    app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  },
  { name: "openapi" },
);

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
