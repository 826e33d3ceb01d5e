import { mkdtemp } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { INVENTORY_API } from "@ecommerce/auth/audiences.ts";
import { startDevIssuer, type DevIssuer } from "@ecommerce/auth/dev-issuer.ts";
import { INVENTORY_READ, INVENTORY_RESERVE } from "@ecommerce/auth/scopes.ts";
import { afterAll, beforeAll, expect, test } from "vitest";
import { call, issuer, startSystem, type TestSystem } from "./system.ts";

/**
 * The order service's own identity at inventory: a client-credentials
 * grant at a real (development) issuer, over HTTP, with the token cached
 * across calls; and what a refused identity looks like to a customer.
 */

const CLIENT = { clientId: "order-service", clientSecret: "test-secret" };
/** Seeded products. */
const LAPTOP = "00000000-0000-4000-8000-000000000001";
const EARBUDS = "00000000-0000-4000-8000-000000000005";

let devIssuer: DevIssuer;
/** In front of the issuer's token endpoint, counting the token requests. */
let counter: Server;
let tokenRequests = 0;
let system: TestSystem;

beforeAll(async () => {
  devIssuer = await startDevIssuer({
    dir: await mkdtemp(path.join(tmpdir(), "ecom-cc-issuer-")),
    port: 0,
    clients: [{ ...CLIENT, scopes: [INVENTORY_READ, INVENTORY_RESERVE], audiences: [INVENTORY_API] }],
  });
  counter = createServer(async (req, res) => {
    tokenRequests++;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const answer = await fetch(devIssuer.tokenUrl, {
      method: "POST",
      headers: { authorization: req.headers.authorization ?? "", "content-type": req.headers["content-type"] ?? "" },
      body: Buffer.concat(chunks),
    });
    res.writeHead(answer.status, { "content-type": "application/json" }).end(await answer.text());
  });
  await new Promise<void>((resolve) => counter.listen(0, "127.0.0.1", resolve));
  system = await startSystem("inventory_token", {
    seed: true,
    inventoryAuth: { issuer: devIssuer.issuer, audience: INVENTORY_API, jwksUrl: devIssuer.jwksUrl },
    env: {
      INVENTORY_TOKEN: "",
      INVENTORY_TOKEN_URL: `http://127.0.0.1:${(counter.address() as AddressInfo).port}/oauth/token`,
      INVENTORY_CLIENT_ID: CLIENT.clientId,
      INVENTORY_CLIENT_SECRET: CLIENT.clientSecret,
    },
  });
});
afterAll(async () => {
  await system?.close();
  await new Promise((resolve) => counter?.close(resolve));
  await devIssuer?.close();
});

test("gets its token for inventory by the client-credentials grant once, and reuses it for many orders", async () => {
  const answers = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      call(`${system.api}/orders`, { body: { user_id: `cc-${i}`, items: [{ product_id: i % 2 ? LAPTOP : EARBUDS, quantity: 1 }] } }),
    ),
  );
  expect(answers.map((a) => a.status)).toEqual(answers.map(() => 201));
  expect((await call(`${system.api}/products/${LAPTOP}`)).status).toBe(200);
  expect(tokenRequests).toBe(1);
});

test("inventory refusing the order service's token is the service's fault: 503 to the customer, never 401", async () => {
  // A token that inventory accepts but that may only read: reserving is refused.
  const readOnly = await startSystem("inventory_token_scope", {
    seed: true,
    env: { INVENTORY_TOKEN: await issuer.token("order-service", { audience: INVENTORY_API, scopes: [INVENTORY_READ] }) },
  });
  try {
    expect((await call(`${readOnly.api}/products/${LAPTOP}`)).status).toBe(200);
    const placed = await call(`${readOnly.api}/orders`, { body: { user_id: "refused", items: [{ product_id: LAPTOP, quantity: 1 }] } });
    expect(placed.status).toBe(503);
    expect(placed.body).toMatchObject({ code: "inventory_unavailable", order_id: expect.any(String) });
    // The order waits, pending, for the service's identity to be fixed.
    expect((await call(`${readOnly.api}/orders/${placed.body.order_id}`)).body.status).toBe("pending");
  } finally {
    await readOnly.close();
  }
});

test("a token endpoint that refuses the client is 503 too", async () => {
  const wrongSecret = await startSystem("inventory_token_secret", {
    seed: true,
    inventoryAuth: { issuer: devIssuer.issuer, audience: INVENTORY_API, jwksUrl: devIssuer.jwksUrl },
    env: { INVENTORY_TOKEN: "", INVENTORY_TOKEN_URL: devIssuer.tokenUrl, INVENTORY_CLIENT_ID: CLIENT.clientId, INVENTORY_CLIENT_SECRET: "wrong" },
  });
  try {
    const res = await call(`${wrongSecret.api}/products/${LAPTOP}`);
    expect(res.status).toBe(503);
    expect(res.body.code).toBe("inventory_unavailable");
  } finally {
    await wrongSecret.close();
  }
});
