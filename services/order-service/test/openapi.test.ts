import { readFile } from "node:fs/promises";
import path from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { PROBLEM_TYPES } from "../src/plugins/problems.ts";
import { startSystem, type TestSystem } from "./system.ts";

let system: TestSystem;
let doc: any;

beforeAll(async () => {
  system = await startSystem("openapi", { env: { RECONCILE_INTERVAL_MS: "0" } });
  const res = await fetch(`${system.root}/openapi.json`);
  expect(res.status).toBe(200);
  doc = await res.json();
});
afterAll(() => system?.close());

/** "METHOD /path/{param}" of every route Fastify registered, from its route tree. */
function registeredRoutes(app: FastifyInstance): string[] {
  const routes: string[] = [];
  const prefixes: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split("\n")) {
    // "│   ├── /:id (GET, HEAD)": four characters of tree per level, a path part, its methods.
    const match = /^((?:[│ ] {3})*)[├└]── (\S+)(?: \(([^)]*)\))?$/.exec(line);
    if (!match) continue;
    const depth = (match[1] ?? "").length / 4;
    const path = (prefixes[depth - 1] ?? "") + match[2];
    prefixes[depth] = path;
    for (const method of match[3]?.split(", ") ?? []) routes.push(`${method} ${path.replace(/:(\w+)/g, "{$1}")}`);
  }
  return routes;
}

/** Every operation of the document, as [method, path, operation]. */
function operations(): [string, string, any][] {
  return Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]): [string, string, any] => [method.toUpperCase(), path, op]),
  );
}

describe("the OpenAPI document", () => {
  test("is a valid OpenAPI 3.1 document with a title, version, description and tags", async () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(await new Validator().validate(doc)).toEqual({ valid: true });
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String), description: expect.any(String) });
    expect(doc.tags.map((t: { name: string }) => t.name)).toEqual(["orders", "products", "events", "health"]);
  });

  test("describes exactly the routes the server serves (besides the docs themselves)", () => {
    const served = registeredRoutes(system.app)
      // HEAD mirrors GET; /docs is Swagger UI and /openapi.json the document
      // itself; /metrics is for Prometheus, not for clients of the API.
      .filter((route) => !route.startsWith("HEAD ") && !/^\S+ \/(docs|openapi\.json|metrics)/.test(route))
      .sort();
    const documented = operations()
      .map(([method, path]) => `${method} ${path}`)
      .sort();

    expect(documented).toEqual(served);
    expect(documented).toEqual([
      "GET /api/v1/events",
      "GET /api/v1/orders",
      "GET /api/v1/orders/{id}",
      "GET /api/v1/products",
      "GET /api/v1/products/{id}",
      "GET /healthz",
      "GET /readyz",
      "POST /api/v1/orders",
      "POST /api/v1/orders/{id}/cancel",
      "POST /api/v1/orders/{id}/fulfill",
    ]);
  });

  test("gives every operation a stable camelCase operationId, a tag and a summary", () => {
    const ids = operations().map(([, , op]) => op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const [method, path, op] of operations()) {
      expect(op.operationId, `${method} ${path}`).toMatch(/^[a-z][a-zA-Z]+$/);
      expect(op.tags, `${method} ${path}`).toHaveLength(1);
      expect(op.summary, `${method} ${path}`).toEqual(expect.any(String));
    }
    expect(ids).toEqual(
      expect.arrayContaining(["placeOrder", "listOrders", "getOrder", "cancelOrder", "fulfillOrder", "listProducts", "getProduct", "listEvents"]),
    );
  });

  test("answers every error as the shared Problem schema in application/problem+json, with an example per code", () => {
    for (const [method, path, op] of operations()) {
      for (const [status, response] of Object.entries(op.responses as Record<string, any>)) {
        const where = `${method} ${path} ${status}`;
        if (Number(status) < 400) {
          expect(Object.keys(response.content), where).toEqual(["application/json"]);
          continue;
        }
        const media = response.content["application/problem+json"];
        expect(media?.schema, where).toEqual({ $ref: "#/components/schemas/Problem" });
        for (const [code, example] of Object.entries(media.examples as Record<string, { value: any }>)) {
          expect(example.value, where).toMatchObject({ code, status: Number(status), type: expect.any(String) });
        }
      }
    }
  });

  test("lists every error code, with its status, in the Problem schema", () => {
    const problem = doc.components.schemas.Problem;
    expect(problem.properties.code.enum.sort()).toEqual(Object.keys(PROBLEM_TYPES).sort());
    for (const [code, { status }] of Object.entries(PROBLEM_TYPES)) {
      expect(problem.description).toContain(`\`${code}\` (${status})`);
    }
    expect(problem.required).toEqual(["type", "title", "status", "detail", "code"]);
  });

  test("matches the README, which lists every error code with its status", async () => {
    const readme = await readFile(path.join(import.meta.dirname, "../README.md"), "utf8");
    for (const [code, { status }] of Object.entries(PROBLEM_TYPES)) {
      expect(readme, code).toContain(`| ${status} | \`${code}\` |`);
    }
  });

  test("documents X-Request-Id on every operation and response, and Idempotency-Key on the state changes", () => {
    for (const [method, path, op] of operations()) {
      expect(op.parameters, `${method} ${path}`).toContainEqual({ $ref: "#/components/parameters/RequestId" });
      for (const response of Object.values(op.responses as Record<string, any>)) {
        expect(response.headers["x-request-id"]).toEqual({ $ref: "#/components/headers/RequestId" });
      }
      const idempotencyKey = (op.parameters as any[]).find((p) => p.name === "idempotency-key");
      if (method === "POST") expect(idempotencyKey, `${method} ${path}`).toMatchObject({ in: "header", required: false });
      else expect(idempotencyKey).toBeUndefined();
    }
    expect(doc.components.parameters.RequestId).toMatchObject({ name: "x-request-id", in: "header" });
  });

  test("declares a bearer JWT scheme and the client-credentials flow with the staff scopes", () => {
    const { bearerAuth, oauth2 } = doc.components.securitySchemes;
    expect(bearerAuth).toMatchObject({ type: "http", scheme: "bearer", bearerFormat: "JWT" });
    expect(oauth2.type).toBe("oauth2");
    expect(Object.keys(oauth2.flows.clientCredentials.scopes).sort()).toEqual(["orders:cancel_any", "orders:fulfil", "orders:read_all"]);
    expect(oauth2.flows.clientCredentials.tokenUrl).toMatch(/^https?:\/\//);
  });

  test("secures every /api/v1 operation, with its scope, and documents its 401 and 403; the probes need nothing", () => {
    for (const [method, path, op] of operations()) {
      if (!path.startsWith("/api/v1/")) {
        expect(op.security, `${method} ${path}`).toBeUndefined();
        continue;
      }
      const scopes = path.endsWith("/fulfill") ? ["orders:fulfil"] : path === "/api/v1/events" ? ["orders:read_all"] : [];
      expect(op.security, `${method} ${path}`).toEqual([{ bearerAuth: scopes }, { oauth2: scopes }]);
      expect(Object.keys(op.responses), `${method} ${path}`).toEqual(expect.arrayContaining(["401", "403"]));
      expect(Object.keys(op.responses["401"].content["application/problem+json"].examples)).toContain("unauthorized");
      expect(Object.keys(op.responses["403"].content["application/problem+json"].examples)).toContain("forbidden");
    }
  });

  test("says that user_id is optional when placing an order", () => {
    const schema = doc.paths["/api/v1/orders"].post.requestBody.content["application/json"].schema;
    expect(schema.required).toEqual(["items"]);
    expect(schema.properties.user_id.description).toMatch(/token's subject/);
  });

  test("shows real examples: a request body of seeded products and the responses", () => {
    const place = doc.paths["/api/v1/orders"].post;
    expect(place.requestBody.content["application/json"].example.items[0].product_id).toBe(
      "00000000-0000-4000-8000-000000000001",
    );
    expect(place.responses["201"].headers.location).toBeDefined();
    for (const name of ["Order", "OrderPage", "Product", "ProductPage", "OrderEvent", "EventPage", "Readiness"]) {
      expect(doc.components.schemas[name].examples, name).toHaveLength(1);
    }
    expect(doc.paths["/api/v1/products/{id}"].get.parameters[0]).toMatchObject({
      name: "id",
      in: "path",
      example: "00000000-0000-4000-8000-000000000001",
    });
  });
});

test("describes the events: the CloudEvent with its proto3 JSON payload, the type filter, and readiness with the outbox lag", () => {
  const list = doc.paths["/api/v1/events"].get;
  const params = Object.fromEntries((list.parameters as any[]).map((p) => [p.name, p]));
  expect(params.type.schema.enum).toEqual([
    "orders.v1.order.placed",
    "orders.v1.order.confirmed",
    "orders.v1.order.rejected",
    "orders.v1.order.cancelled",
    "orders.v1.order.fulfilled",
  ]);
  expect(params.limit.schema).toMatchObject({ minimum: 1, maximum: 500, default: 100 });
  expect(params.cursor.schema.maxLength).toBe(512);
  expect(list.responses["200"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/EventPage" });
  expect(Object.keys(list.responses["400"].content["application/problem+json"].examples)).toEqual(["validation_failed", "invalid_cursor"]);
  const event = doc.components.schemas.OrderEvent;
  expect(event.required).toEqual(["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"]);
  expect(event.properties.data.properties.order.properties.status.enum).toContain("ORDER_STATUS_CONFIRMED");
  expect(event.properties.data.properties.order.properties.totalMinor.pattern).toBe("^-?[0-9]+$");
  expect(doc.components.schemas.EventPage.required).toEqual(["data", "next_cursor"]);
  const readiness = doc.paths["/readyz"].get.responses["200"].content["application/json"].schema;
  expect(readiness).toEqual({ $ref: "#/components/schemas/Readiness" });
  expect(Object.keys(doc.components.schemas.Readiness.properties.events.properties)).toEqual([
    "publishing",
    "unpublished",
    "oldest_unpublished_age_seconds",
  ]);
});

describe("Swagger UI", () => {
  test("keeps a token pasted under Authorize across reloads", async () => {
    const init = await (await fetch(`${system.root}/docs/static/swagger-initializer.js`)).text();
    expect(init).toMatch(/"persistAuthorization":\s*true/);
  });

  test("is served at /docs under the security headers, with its scripts allowed by the CSP", async () => {
    const page = await fetch(`${system.root}/docs`);
    const html = await page.text();
    const csp = page.headers.get("content-security-policy") ?? "";

    expect(page.status).toBe(200);
    expect(html).toContain('<div id="swagger-ui">');
    expect(csp).toContain("script-src 'self'");
    // Every script the page loads is its own, so 'self' allows it.
    for (const [, src] of html.matchAll(/<script[^>]*src="([^"]+)"/g)) {
      expect(src).not.toMatch(/^(https?:)?\/\//);
      expect((await fetch(new URL(src ?? "", system.root))).status).toBe(200);
    }
  });
});
