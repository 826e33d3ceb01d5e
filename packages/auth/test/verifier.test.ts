import { readFile } from "node:fs/promises";
import path from "node:path";
import { base64url, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { INVENTORY_API, ORDERS_API } from "../src/audiences.ts";
import { mintToken, jwksFilePath } from "../src/dev-issuer.ts";
import { AuthError, KeySetUnavailableError, wwwAuthenticate } from "../src/errors.ts";
import { ORDERS_FULFIL, ORDERS_READ_ALL, requireScopes } from "../src/scopes.ts";
import { createTokenVerifier } from "../src/verifier.ts";
import { closedPort, runningIssuer, signWithCurrentKey } from "./fixture.ts";

const running = runningIssuer();
const HOUR_MS = 3_600_000;

function ordersVerifier(options: { keyRefetchCooldownSeconds?: number } = {}) {
  return createTokenVerifier({ issuer: running.issuer.issuer, audience: ORDERS_API, jwksUrl: running.issuer.jwksUrl, ...options });
}

function customerToken(overrides: Partial<Parameters<typeof mintToken>[0]> = {}) {
  return mintToken({ dir: running.dir, issuer: running.issuer.issuer, subject: "alice", audience: ORDERS_API, ...overrides });
}

async function refusal(verify: Promise<unknown>): Promise<AuthError> {
  const error = await verify.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

/** Bearer tokens that must be refused, each with the code and reason the caller is told. */
const badTokens: Array<{ name: string; token: () => Promise<string | undefined>; code: string; reason?: string }> = [
  { name: "expired", token: () => customerToken({ now: new Date(Date.now() - 2 * HOUR_MS) }), code: "invalid_token", reason: "expired" },
  { name: "not yet valid", token: () => customerToken({ now: new Date(Date.now() + HOUR_MS) }), code: "invalid_token", reason: "not_yet_valid" },
  { name: "from another issuer", token: () => customerToken({ issuer: "https://issuer.example" }), code: "invalid_token", reason: "wrong_issuer" },
  { name: "for another audience", token: () => customerToken({ audience: "payments-api" }), code: "invalid_token", reason: "wrong_audience" },
  { name: "for inventory, used at orders", token: () => customerToken({ audience: INVENTORY_API }), code: "invalid_token", reason: "wrong_audience" },
  {
    name: "unsigned (alg none)",
    token: async () => {
      const good = await customerToken();
      const [, payload] = good.split(".");
      return `${base64url.encode(JSON.stringify({ alg: "none", typ: "JWT" }))}.${payload}.`;
    },
    code: "invalid_token",
    reason: "algorithm_not_allowed",
  },
  {
    name: "HMAC-signed with the public key as secret",
    token: async () => {
      const jwks = await readFile(jwksFilePath(running.dir), "utf8");
      const key = (JSON.parse(jwks) as { keys: Array<{ kid: string }> }).keys[0]!;
      return new SignJWT({ scope: ORDERS_READ_ALL })
        .setProtectedHeader({ alg: "HS256", kid: key.kid })
        .setIssuer(running.issuer.issuer)
        .setSubject("mallory")
        .setAudience(ORDERS_API)
        .setExpirationTime("1h")
        .sign(new TextEncoder().encode(JSON.stringify(key)));
    },
    code: "invalid_token",
    reason: "algorithm_not_allowed",
  },
  {
    name: "with a tampered payload",
    token: async () => {
      const [header, payload, signature] = (await customerToken()).split(".");
      const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload!))) as Record<string, unknown>;
      const forged = base64url.encode(JSON.stringify({ ...claims, scope: ORDERS_READ_ALL }));
      return `${header}.${forged}.${signature}`;
    },
    code: "invalid_token",
    reason: "bad_signature",
  },
  {
    name: "signed by a key not in the JWKS",
    token: async () => {
      const { privateKey } = await generateKeyPair("ES256");
      return new SignJWT({})
        .setProtectedHeader({ alg: "ES256", kid: "not-a-key-of-the-issuer" })
        .setIssuer(running.issuer.issuer)
        .setSubject("mallory")
        .setAudience(ORDERS_API)
        .setExpirationTime("1h")
        .sign(privateKey);
    },
    code: "invalid_token",
    reason: "unknown_key",
  },
  { name: "without a subject", token: () => signWithCurrentKey(running.dir, { iss: running.issuer.issuer, aud: ORDERS_API, exp: Math.floor(Date.now() / 1000) + 60 }), code: "invalid_token", reason: "invalid_claims" },
  { name: "without an expiry", token: () => signWithCurrentKey(running.dir, { iss: running.issuer.issuer, aud: ORDERS_API, sub: "alice" }), code: "invalid_token", reason: "invalid_claims" },
  { name: "garbage", token: async () => "eyJub3Q.a.jwt", code: "malformed_token" },
  { name: "not even dotted", token: async () => "garbage", code: "malformed_token" },
  { name: "missing", token: async () => undefined, code: "missing_token" },
  { name: "empty", token: async () => "", code: "missing_token" },
];

describe("token verification", () => {
  it.each(badTokens)("refuses a token $name, without echoing it", async ({ token, code, reason }) => {
    const raw = await token();
    const error = await refusal(ordersVerifier().verify(raw === undefined ? undefined : `Bearer ${raw}`));
    expect({ code: error.code, reason: error.reason }).toEqual({ code, reason });
    for (const part of (raw ?? "").split(".").filter((p) => p.length > 3)) expect(error.message).not.toContain(part);
    expect(wwwAuthenticate(error)).not.toContain(raw || "no token");
  });

  it("treats another authorization scheme as no bearer token", async () => {
    const error = await refusal(ordersVerifier().verify("Basic YWxpY2U6c2VjcmV0"));
    expect(error.code).toBe("missing_token");
    expect(wwwAuthenticate(error, { realm: "orders" })).toBe('Bearer realm="orders"');
  });

  it("answers the principal of a good token, from a header or bare", async () => {
    const token = await customerToken({ scopes: [ORDERS_READ_ALL, ORDERS_FULFIL], clientId: "staff-portal", ttlSeconds: 600 });
    const verifier = ordersVerifier();
    const principal = await verifier.verify(`Bearer ${token}`);
    expect(principal.subject).toBe("alice");
    expect([...principal.scopes].sort()).toEqual([ORDERS_FULFIL, ORDERS_READ_ALL]);
    expect(principal.clientId).toBe("staff-portal");
    expect(Math.abs(principal.expiresAt.getTime() - (Date.now() + 600_000))).toBeLessThan(5_000);
    await expect(verifier.verify(token)).resolves.toEqual(principal);
  });

  it("merges scopes from `scope` and `scp`", async () => {
    const token = await signWithCurrentKey(running.dir, {
      iss: running.issuer.issuer,
      aud: [ORDERS_API, "other-api"],
      sub: "bob",
      exp: Math.floor(Date.now() / 1000) + 60,
      scope: ORDERS_READ_ALL,
      scp: [ORDERS_FULFIL],
    });
    const principal = await ordersVerifier().verify(token);
    expect([...principal.scopes].sort()).toEqual([ORDERS_FULFIL, ORDERS_READ_ALL]);
    expect(principal.clientId).toBeUndefined();
  });

  it("accepts a token within the clock tolerance of its expiry", async () => {
    const token = await customerToken({ ttlSeconds: 60, now: new Date(Date.now() - 70_000) });
    await expect(ordersVerifier().verify(token)).resolves.toMatchObject({ subject: "alice" });
    await expect(createTokenVerifier({ issuer: running.issuer.issuer, audience: ORDERS_API, jwksUrl: running.issuer.jwksUrl, clockToleranceSeconds: 0 }).verify(token)).rejects.toMatchObject({ reason: "expired" });
  });

  it("says when the keys cannot be fetched, apart from refusals", async () => {
    const verifier = createTokenVerifier({ issuer: running.issuer.issuer, audience: ORDERS_API, jwksUrl: `http://127.0.0.1:${await closedPort()}/.well-known/jwks.json` });
    const error = await verifier.verify(await customerToken()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeySetUnavailableError);
    expect((error as Error).message).toContain("ECONNREFUSED");
  });
});

describe("key rotation", () => {
  it("verifies a token of a newly rotated-in key without a new verifier", async () => {
    const verifier = ordersVerifier({ keyRefetchCooldownSeconds: 0 });
    const before = await customerToken();
    await verifier.verify(before);
    await running.issuer.rotateKey();
    const after = await customerToken();
    expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);
    await expect(verifier.verify(after)).resolves.toMatchObject({ subject: "alice" });
    await expect(verifier.verify(before)).resolves.toMatchObject({ subject: "alice" });
  });

  it("does not refetch the keys within the cooldown", async () => {
    const verifier = ordersVerifier({ keyRefetchCooldownSeconds: 60 });
    await verifier.verify(await customerToken());
    await running.issuer.rotateKey();
    await expect(verifier.verify(await customerToken())).rejects.toMatchObject({ code: "invalid_token", reason: "unknown_key" });
  });

  it("stops accepting a removed key once the verifier reloads", async () => {
    const old = await customerToken();
    await running.issuer.rotateKey();
    await running.issuer.removeKey(decodeProtectedHeader(old).kid!);
    await expect(ordersVerifier().verify(old)).rejects.toMatchObject({ reason: "unknown_key" });
  });
});

describe("remembering verified tokens", () => {
  function fileVerifier(options: { rememberSeconds?: number } = {}) {
    return createTokenVerifier({
      issuer: running.issuer.issuer,
      audience: ORDERS_API,
      jwksFile: jwksFilePath(running.dir),
      clockToleranceSeconds: 0,
      keyRefetchCooldownSeconds: 0,
      ...options,
    });
  }

  it("answers a token it verified before without checking its signature again", async () => {
    const token = await customerToken();
    const remembering = fileVerifier();
    const forgetful = fileVerifier({ rememberSeconds: 0 });
    await remembering.verify(token);
    await forgetful.verify(token);
    // The token's key leaves the JWKS; a token of the new key makes both reload it.
    await running.issuer.rotateKey();
    await running.issuer.removeKey(decodeProtectedHeader(token).kid!);
    const fresh = await customerToken();
    await Promise.all([remembering.verify(fresh), forgetful.verify(fresh)]);
    await expect(remembering.verify(token)).resolves.toMatchObject({ subject: "alice" });
    await expect(forgetful.verify(token)).rejects.toMatchObject({ reason: "unknown_key" });
  });

  it("never remembers a token past its expiry", async () => {
    const token = await mintToken({ dir: running.dir, issuer: running.issuer.issuer, subject: "alice", audience: ORDERS_API, ttlSeconds: 1 });
    const verifier = fileVerifier();
    await verifier.verify(token);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await expect(verifier.verify(token)).rejects.toMatchObject({ reason: "expired" });
  });
});

describe("keys from a file", () => {
  function fileVerifier() {
    return createTokenVerifier({ issuer: running.issuer.issuer, audience: ORDERS_API, jwksFile: jwksFilePath(running.dir), keyRefetchCooldownSeconds: 0 });
  }

  it("verifies against the JWK Set file and rereads it for a new key id", async () => {
    const verifier = fileVerifier();
    await expect(verifier.verify(await customerToken())).resolves.toMatchObject({ subject: "alice" });
    await running.issuer.rotateKey();
    await expect(verifier.verify(await customerToken())).resolves.toMatchObject({ subject: "alice" });
  });

  it("refuses a key the file does not have", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const kid = (await exportJWK(publicKey)).x!;
    const token = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid }).setIssuer(running.issuer.issuer).setSubject("mallory").setAudience(ORDERS_API).setExpirationTime("1h").sign(privateKey);
    await expect(fileVerifier().verify(token)).rejects.toMatchObject({ reason: "unknown_key" });
  });

  it("says when the file cannot be read", async () => {
    const verifier = createTokenVerifier({ issuer: running.issuer.issuer, audience: ORDERS_API, jwksFile: path.join(running.dir, "absent.json") });
    await expect(verifier.verify(await customerToken())).rejects.toBeInstanceOf(KeySetUnavailableError);
  });
});

describe("scopes", () => {
  it("refuses a principal without every required scope, naming them in the challenge", async () => {
    const principal = await ordersVerifier().verify(await customerToken({ scopes: [ORDERS_READ_ALL] }));
    expect(() => requireScopes(principal, ORDERS_READ_ALL)).not.toThrow();
    let error: unknown;
    try {
      requireScopes(principal, ORDERS_READ_ALL, ORDERS_FULFIL);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "insufficient_scope", requiredScopes: [ORDERS_READ_ALL, ORDERS_FULFIL] });
    expect(wwwAuthenticate(error as AuthError, { realm: "orders-api" })).toBe(
      'Bearer realm="orders-api", error="insufficient_scope", error_description="this operation needs the scope orders:fulfil", scope="orders:read_all orders:fulfil"',
    );
  });

  it("builds the invalid_token challenge", () => {
    const error = new AuthError("invalid_token", 'the "token" has expired', { reason: "expired" });
    expect(wwwAuthenticate(error, { realm: "inventory-api" })).toBe(`Bearer realm="inventory-api", error="invalid_token", error_description="the 'token' has expired"`);
  });
});
