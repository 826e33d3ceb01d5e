import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { getProduct, listProducts } from "../products/catalogue.ts";
import { AUTH_PROBLEMS, DEFAULT_PAGE_SIZE, json, secured, ListProductsQuery, Product, ProductIdParams, ProductPage, problems } from "./schemas.ts";

const tags = ["products"];

/** The catalogue with availability, read from inventory. */
export const productRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    "/products",
    {
      schema: {
        tags,
        operationId: "listProducts",
        summary: "List products with their stock",
        description: "Any authenticated caller. Read from inventory. Pages like GET /orders: pass `next_cursor` as `cursor` until it is null.",
        security: secured(),
        querystring: ListProductsQuery,
        response: {
          200: json("A page of products", ProductPage),
          ...problems("validation_failed", "invalid_cursor", ...AUTH_PROBLEMS, "rate_limited", "internal_error", "inventory_unavailable"),
        },
      },
    },
    async (request) =>
      listProducts(app.inventory, { ...request.query, limit: request.query.limit ?? DEFAULT_PAGE_SIZE }),
  );

  app.get(
    "/products/:id",
    {
      schema: {
        tags,
        operationId: "getProduct",
        summary: "Get a product with its stock",
        description: "Any authenticated caller. Read from inventory.",
        security: secured(),
        params: ProductIdParams,
        response: {
          200: json("The product", Product),
          ...problems("validation_failed", ...AUTH_PROBLEMS, "product_not_found", "rate_limited", "internal_error", "inventory_unavailable"),
        },
      },
    },
    async (request) => getProduct(app.inventory, request.params.id),
  );
};
