import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { INVENTORY_API } from "../src/audiences.ts";
import { createClientCredentialsSource, staticTokenSource } from "../src/client-credentials.ts";
import { TokenRequestError } from "../src/errors.ts";
import { INVENTORY_RESERVE } from "../src/scopes.ts";
import { createTokenVerifier } from "../src/verifier.ts";
import { closedPort, ORDER_SERVICE_CLIENT, runningIssuer } from "./fixture.ts";

// Two-second tokens: the source replaces them after one second.
const running = runningIssuer({ tokenTtlSeconds: 2 });

function orderServiceSource(overrides: { clientSecret?: string; tokenUrl?: string } = {}) {
  return createClientCredentialsSource({
    tokenUrl: running.issuer.tokenUrl,
    clientId: ORDER_SERVICE_CLIENT.clientId,
    clientSecret: ORDER_SERVICE_CLIENT.clientSecret,
    scope: INVENTORY_RESERVE,
    audience: INVENTORY_API,
    ...overrides,
  });
}

describe("client-credentials token source", () => {
  it("gets a token the inventory API accepts", async () => {
    const token = await orderServiceSource().token();
    const verifier = createTokenVerifier({ issuer: running.issuer.issuer, audience: INVENTORY_API, jwksUrl: running.issuer.jwksUrl });
    const principal = await verifier.verify(token);
    expect(principal.subject).toBe("order-service");
    expect(principal.scopes.has(INVENTORY_RESERVE)).toBe(true);
  });

  it("reuses its token across calls", async () => {
    const source = orderServiceSource();
    const tokens = new Set<string>();
    for (let i = 0; i < 20; i++) tokens.add(await source.token());
    // Every token the issuer mints has its own jti, so one token is one request.
    expect(tokens.size).toBe(1);
  });

  it("shares one request among concurrent callers", async () => {
    const tokens = await Promise.all(Array.from({ length: 50 }, orderServiceSource().token));
    expect(new Set(tokens).size).toBe(1);
  });

  it("replaces its token before it expires", async () => {
    const source = orderServiceSource();
    const first = await source.token();
    await sleep(1_200);
    const second = await source.token();
    expect(second).not.toBe(first);
    expect(await source.token()).toBe(second);
  });

  it("says the issuer refused a wrong secret", async () => {
    const error = await orderServiceSource({ clientSecret: "not-the-secret-x9" }).token().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenRequestError);
    expect(error).toMatchObject({ error: "invalid_client" });
    expect((error as Error).message).toContain("refused client order-service: 401 invalid_client");
    expect((error as Error).message).not.toContain("not-the-secret-x9");
  });

  it("says the issuer is unreachable", async () => {
    const error = await orderServiceSource({ tokenUrl: `http://127.0.0.1:${await closedPort()}/oauth/token` }).token().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenRequestError);
    expect((error as Error).message).toMatch(/unreachable: .*ECONNREFUSED/);
  });

  it("hands out a fixed token as given", async () => {
    await expect(staticTokenSource("abc").token()).resolves.toBe("abc");
  });
});
