import { describe, expect, it } from "vitest";
import { INVENTORY_API } from "../src/audiences.ts";
import { INVENTORY_ADMIN, INVENTORY_RESERVE } from "../src/scopes.ts";
import { createTokenVerifier } from "../src/verifier.ts";
import { ORDER_SERVICE_CLIENT, runningIssuer } from "./fixture.ts";

const running = runningIssuer();

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
}

async function tokenRequest(form: Record<string, string>, authorization?: string) {
  const response = await fetch(running.issuer.tokenUrl, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...(authorization ? { authorization } : {}) },
    body: new URLSearchParams(form),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const orderService = basic(ORDER_SERVICE_CLIENT.clientId, ORDER_SERVICE_CLIENT.clientSecret);

describe("development issuer", () => {
  it("publishes its endpoints and keys", async () => {
    const discovery = (await (await fetch(`${running.issuer.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery).toMatchObject({
      issuer: running.issuer.issuer,
      jwks_uri: running.issuer.jwksUrl,
      token_endpoint: running.issuer.tokenUrl,
      grant_types_supported: ["client_credentials"],
    });
    const jwks = (await (await fetch(running.issuer.jwksUrl)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
    expect(jwks.keys[0]).not.toHaveProperty("d");
  });

  it("grants a client-credentials token that the inventory API accepts", async () => {
    const { status, body } = await tokenRequest({ grant_type: "client_credentials", scope: INVENTORY_RESERVE }, orderService);
    expect(status).toBe(200);
    expect(body).toMatchObject({ token_type: "Bearer", expires_in: 3600, scope: INVENTORY_RESERVE });
    const verifier = createTokenVerifier({ issuer: running.issuer.issuer, audience: INVENTORY_API, jwksUrl: running.issuer.jwksUrl });
    const principal = await verifier.verify(body.access_token as string);
    expect(principal).toMatchObject({ subject: "order-service", clientId: "order-service" });
    expect([...principal.scopes]).toEqual([INVENTORY_RESERVE]);
  });

  it("takes the client's credentials in the form too", async () => {
    const { status, body } = await tokenRequest({ grant_type: "client_credentials", client_id: ORDER_SERVICE_CLIENT.clientId, client_secret: ORDER_SERVICE_CLIENT.clientSecret });
    expect(status).toBe(200);
    expect(body.scope).toBe(INVENTORY_RESERVE);
    const alongsideBasic = await tokenRequest({ grant_type: "client_credentials", client_id: ORDER_SERVICE_CLIENT.clientId }, orderService);
    expect(alongsideBasic.status).toBe(200);
  });

  it.each<{ name: string; form: Record<string, string>; auth: string | undefined; status: number; error: string }>([
    { name: "an unknown client", form: { grant_type: "client_credentials" }, auth: basic("nobody", "x"), status: 401, error: "invalid_client" },
    { name: "a wrong secret", form: { grant_type: "client_credentials" }, auth: basic("order-service", "wrong"), status: 401, error: "invalid_client" },
    { name: "no client authentication", form: { grant_type: "client_credentials" }, auth: undefined, status: 401, error: "invalid_client" },
    { name: "two authentication methods at once", form: { grant_type: "client_credentials", client_id: "order-service", client_secret: "order-service-secret" }, auth: orderService, status: 400, error: "invalid_request" },
    { name: "another grant type", form: { grant_type: "password", username: "a", password: "b" }, auth: orderService, status: 400, error: "unsupported_grant_type" },
    { name: "a scope the client may not have", form: { grant_type: "client_credentials", scope: INVENTORY_ADMIN }, auth: orderService, status: 400, error: "invalid_scope" },
    { name: "an audience the client may not have", form: { grant_type: "client_credentials", audience: "orders-api" }, auth: orderService, status: 400, error: "invalid_target" },
  ])("refuses $name", async ({ form, auth, status, error }) => {
    const answer = await tokenRequest(form, auth);
    expect(answer).toMatchObject({ status, body: { error } });
    expect(answer.body.access_token).toBeUndefined();
  });
});
