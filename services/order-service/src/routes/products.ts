import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { getProduct, listProducts } from "../products/catalogue.ts";
import { DEFAULT_PAGE_SIZE, IdParams, ListProductsQuery, Product, ProductPage, problems } from "./schemas.ts";

const tags = ["products"];

/** The catalogue with availability, read from inventory. */
export const productRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    "/products",
    {
      schema: {
        tags,
        summary: "List products with their stock",
        querystring: ListProductsQuery,
        response: { 200: ProductPage, ...problems(400, 500, 503) },
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
        summary: "Get a product with its stock",
        params: IdParams,
        response: { 200: Product, ...problems(400, 404, 500, 503) },
      },
    },
    async (request) => getProduct(app.inventory, request.params.id),
  );
};
