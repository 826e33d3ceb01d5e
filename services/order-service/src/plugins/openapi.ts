import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import fp from "fastify-plugin";

/**
 * The OpenAPI 3.1 document, generated from the route schemas, at
 * /openapi.json, and Swagger UI at /docs. Register before the routes so it
 * sees them.
 */
export const openApiPlugin = fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        openapi: "3.1.0",
        info: {
          title: "Order service",
          description:
            "Orders of the e-commerce core. Errors are RFC 9457 problem documents (application/problem+json) with a stable `code`.",
          version: "1.0.0",
        },
        tags: [
          { name: "orders", description: "Place, read, cancel and fulfil orders" },
          { name: "products", description: "The catalogue with availability, from inventory" },
          { name: "health", description: "Probes" },
        ],
      },
    });
    await app.register(swaggerUi, { routePrefix: "/docs" });
    app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  },
  { name: "openapi" },
);
