import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bearer, call, createProduct, startSystem, type TestSystem } from "./system.ts";

/** The default setup: no CORS, no rate limit (as the other tests run). */
let plain: TestSystem;
/** CORS for one origin and a budget of 3 requests per client and minute. */
let guarded: TestSystem;
let product: string;

const SHOP = "https://shop.example.com";

beforeAll(async () => {
  [plain, guarded] = await Promise.all([
    startSystem("conventions", { env: { RECONCILE_INTERVAL_MS: "0", BODY_LIMIT_BYTES: "2048" } }),
    startSystem("guarded", {
      env: { RECONCILE_INTERVAL_MS: "0", CORS_ORIGINS: SHOP, RATE_LIMIT_MAX: "3", RATE_LIMIT_WINDOW_MS: "60000", TRUST_PROXY: "true" },
    }),
  ]);
  product = await createProduct(plain, { stock: 100 });
});
afterAll(async () => {
  await plain?.close();
  await guarded?.close();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("request ids", () => {
  test("echoes a valid X-Request-Id, on success and on errors", async () => {
    const ok = await call(`${plain.api}/orders`, { headers: { "x-request-id": "checkout-7f3a:retry.2" } });
    const notFound = await call(`${plain.api}/orders/0190c0de-0000-7000-8000-000000000000`, {
      headers: { "x-request-id": "trace/ABC~123" },
    });

    expect(ok.headers.get("x-request-id")).toBe("checkout-7f3a:retry.2");
    expect(notFound.status).toBe(404);
    expect(notFound.headers.get("x-request-id")).toBe("trace/ABC~123");
  });

  test("generates a UUID when there is none, and a new one for every request", async () => {
    const [a, b] = await Promise.all([call(`${plain.root}/healthz`), call(`${plain.root}/healthz`)]);
    expect(a.headers.get("x-request-id")).toMatch(UUID);
    expect(b.headers.get("x-request-id")).toMatch(UUID);
    expect(a.headers.get("x-request-id")).not.toBe(b.headers.get("x-request-id"));
  });

  test("replaces an X-Request-Id that is too long or has invisible characters", async () => {
    for (const given of ["x".repeat(129), "two words", "tab\there"]) {
      const res = await call(`${plain.root}/healthz`, { headers: { "x-request-id": given } });
      expect(res.headers.get("x-request-id"), JSON.stringify(given)).toMatch(UUID);
    }
    const longest = "y".repeat(128);
    expect((await call(`${plain.root}/healthz`, { headers: { "x-request-id": longest } })).headers.get("x-request-id")).toBe(
      longest,
    );
  });
});

describe("security headers", () => {
  test("are on every response: API, errors and docs", async () => {
    for (const url of [`${plain.api}/orders`, `${plain.api}/nowhere`, `${plain.root}/docs`, `${plain.root}/openapi.json`]) {
      const res = await fetch(url);
      expect(res.headers.get("x-content-type-options"), url).toBe("nosniff");
      expect(res.headers.get("content-security-policy"), url).toContain("default-src 'self'");
      expect(res.headers.get("strict-transport-security"), url).toMatch(/max-age=\d+/);
      expect(res.headers.get("x-frame-options"), url).toBe("SAMEORIGIN");
      expect(res.headers.get("referrer-policy"), url).toBe("no-referrer");
      expect(res.headers.get("x-powered-by"), url).toBeNull();
    }
  });
});

describe("bodies", () => {
  test("a body over BODY_LIMIT_BYTES is 413 body_too_large", async () => {
    const items = Array.from({ length: 40 }, () => ({ product_id: product, quantity: 1 }));
    const res = await call(`${plain.api}/orders`, { body: { user_id: "big", items } });

    expect(res.status).toBe(413);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(res.body.code).toBe("body_too_large");
  });

  test("a body that is not application/json is 415 unsupported_media_type", async () => {
    for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "application/xml", "application/json-patch+json"]) {
      const res = await call(`${plain.api}/orders`, { body: "{}", headers: { "content-type": contentType } });
      expect(res.status, contentType).toBe(415);
      expect(res.body.code, contentType).toBe("unsupported_media_type");
    }
  });

  test("application/json with a charset is JSON", async () => {
    const res = await call(`${plain.api}/orders`, {
      body: { user_id: "charset", items: [{ product_id: product, quantity: 1 }] },
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(res.status).toBe(201);
  });

  test("cancel and fulfil take no body, with or without a JSON content type", async () => {
    const place = () => call(`${plain.api}/orders`, { body: { user_id: "nobody", items: [{ product_id: product, quantity: 1 }] } });
    const [a, b] = [(await place()).body.id, (await place()).body.id];

    const authorization = await bearer("nobody");
    const bare = await fetch(`${plain.api}/orders/${a}/cancel`, { method: "POST", headers: { authorization } });
    const labelled = await fetch(`${plain.api}/orders/${b}/fulfill`, { method: "POST", headers: { authorization, "content-type": "application/json" } });

    expect(bare.status).toBe(200);
    expect(labelled.status).toBe(200);
  });
});

describe("rate limiting", () => {
  // Each client is a caller of its own: the limiter keys authenticated callers by subject.
  const from = async (client: string, headers: Record<string, string> = {}) => ({
    headers: { "x-forwarded-for": client, authorization: await bearer(`client-${client}`), ...headers },
  });

  test("answers 429 rate_limited with Retry-After once a client spends its budget", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await call(`${guarded.api}/orders`, await from("203.0.113.1"))).status);
    const limited = await call(`${guarded.api}/orders`, await from("203.0.113.1"));

    expect(statuses).toEqual([200, 200, 200]);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(limited.body).toMatchObject({ code: "rate_limited", status: 429 });
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(limited.headers.get("x-ratelimit-limit")).toBe("3");
    expect(limited.headers.get("x-ratelimit-remaining")).toBe("0");
    expect(limited.headers.get("x-request-id")).toMatch(UUID);
  });

  test("counts each client apart, and never limits the probes", async () => {
    for (let i = 0; i < 4; i++) await call(`${guarded.api}/orders`, await from("203.0.113.2"));

    expect((await call(`${guarded.api}/orders`, await from("203.0.113.3"))).status).toBe(200);
    for (let i = 0; i < 5; i++) {
      expect((await call(`${guarded.root}/healthz`, await from("203.0.113.2"))).status).toBe(200);
      expect((await call(`${guarded.root}/readyz`, await from("203.0.113.2"))).status).toBe(200);
    }
  });

  test("is off when RATE_LIMIT_MAX=0", async () => {
    const statuses = await Promise.all(Array.from({ length: 50 }, async () => (await call(`${plain.api}/orders?limit=1`)).status));
    expect(new Set(statuses)).toEqual(new Set([200]));
  });
});

describe("CORS", () => {
  test("is off unless CORS_ORIGINS is set: no CORS headers, and OPTIONS only says which methods the path takes", async () => {
    const simple = await fetch(`${plain.api}/orders`, { headers: { origin: SHOP } });
    const preflight = await fetch(`${plain.api}/orders`, {
      method: "OPTIONS",
      headers: { origin: SHOP, "access-control-request-method": "POST" },
    });

    expect(simple.headers.get("access-control-allow-origin")).toBeNull();
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("allow")).toBe("GET, HEAD, OPTIONS, POST");
    expect(preflight.headers.get("access-control-allow-methods")).toBeNull();
  });

  test("allows the configured origin, exposing the headers clients need", async () => {
    const res = await fetch(`${guarded.api}/orders`, { headers: { origin: SHOP, "x-forwarded-for": "198.51.100.1" } });

    expect(res.headers.get("access-control-allow-origin")).toBe(SHOP);
    const exposed = res.headers.get("access-control-expose-headers") ?? "";
    for (const header of ["x-request-id", "location", "retry-after"]) expect(exposed).toContain(header);
  });

  test("answers a preflight for a POST with an Idempotency-Key from the configured origin", async () => {
    const res = await fetch(`${guarded.api}/orders`, {
      method: "OPTIONS",
      headers: {
        origin: SHOP,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,idempotency-key",
        "x-forwarded-for": "198.51.100.2",
      },
    });

    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(SHOP);
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    expect(res.headers.get("access-control-allow-headers")).toContain("idempotency-key");
  });

  test("gives no CORS headers to any other origin", async () => {
    const res = await fetch(`${guarded.api}/orders`, {
      headers: { origin: "https://evil.example.net", "x-forwarded-for": "198.51.100.3" },
    });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});
