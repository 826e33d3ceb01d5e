import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { jwksFilePath, mintToken, publicJwks } from "@ecommerce/auth/dev-issuer.ts";

/** The issuer tests trust: its name only; keys come from a file, so no server is needed. */
const TEST_ISSUER = "https://issuer.test.invalid";

/** A token issuer of a test's own: a signing key in a temporary folder and its JWKS as a file. */
export interface TestIssuer {
  issuer: string;
  /** The public keys, as AUTH_JWKS_FILE. */
  jwksFile: string;
  /** The environment that makes a service trust this issuer, for its `audience`. */
  env(audience: string): Record<string, string>;
  /** A token for `subject` with `scopes`, for `audience`, valid for `ttlSeconds` (an hour). */
  token(subject: string, options: { audience: string; scopes?: readonly string[]; ttlSeconds?: number; clientId?: string }): Promise<string>;
}

/** Creates a {@link TestIssuer} with a fresh signing key. */
export async function createTestIssuer(): Promise<TestIssuer> {
  const dir = await mkdtemp(path.join(tmpdir(), "ecom-issuer-"));
  await publicJwks(dir); // makes the key and its JWKS file
  const jwksFile = jwksFilePath(dir);
  return {
    issuer: TEST_ISSUER,
    jwksFile,
    env: (audience) => ({ AUTH_ISSUER: TEST_ISSUER, AUTH_AUDIENCE: audience, AUTH_JWKS_FILE: jwksFile }),
    token: (subject, { audience, scopes, ttlSeconds, clientId }) =>
      mintToken({ dir, issuer: TEST_ISSUER, subject, audience, scopes, ttlSeconds, clientId }),
  };
}
