import { readFile } from "node:fs/promises";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyGetKey,
} from "jose";
import { AuthError, KeySetUnavailableError, type InvalidTokenReason } from "./errors.ts";

/** Who a verified token speaks for, and what it lets them do. */
export interface Principal {
  /** The `sub` claim: a customer's or staff member's id, or a client's id for a service. */
  subject: string;
  /** From the `scope` claim (space-separated) and the `scp` claim (an array), merged. */
  scopes: ReadonlySet<string>;
  /** The OAuth client the token was issued to (`client_id`, else `azp`), when the token says. */
  clientId?: string;
  expiresAt: Date;
}

export interface TokenVerifierOptions {
  /** The only `iss` accepted. */
  issuer: string;
  /** The `aud` a token must name: this API's own audience. */
  audience: string;
  /** Where the issuer publishes its keys; give this or jwksFile. */
  jwksUrl?: string;
  /** A JWK Set on disk; give this or jwksUrl. */
  jwksFile?: string;
  /** Skew allowed between the issuer's clock and ours when checking `exp` and `nbf`. */
  clockToleranceSeconds?: number;
  /**
   * Least time between two loads of the keys caused by tokens naming a key
   * we do not have: a rotated-in key is picked up within this long, and a
   * stream of forged key ids cannot turn into a stream of fetches.
   */
  keyRefetchCooldownSeconds?: number;
  /**
   * How long a verified token is remembered (never past its expiry), so a
   * caller that sends the same token with every call, as a service does,
   * pays for its signature check once rather than on every call; a key
   * removed from the JWKS stops being honoured within this long. 0 turns
   * the memory off.
   */
  rememberSeconds?: number;
}

/** Most verified tokens remembered at once; the oldest is forgotten first. */
const REMEMBERED_TOKENS = 10_000;

export interface TokenVerifier {
  /**
   * Verifies an `Authorization` header value (`Bearer <token>`) or a bare
   * token and answers its principal. Throws {@link AuthError} for any
   * refused credential, {@link KeySetUnavailableError} when the keys cannot
   * be loaded.
   */
  verify(authorizationHeaderOrToken: string | undefined): Promise<Principal>;
}

/**
 * Asymmetric algorithms only: a verifier holds public keys, and accepting
 * HMAC would let anyone who has a public key sign with it as the secret;
 * `none` is refused by not being listed.
 */
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];

/**
 * Builds a verifier of OAuth 2.0 bearer JWTs for one API: signature by a
 * key of the issuer's JWKS (fetched from a URL, or read from a file),
 * issuer, audience, and expiry and not-before within a small clock skew.
 * A token naming a key id the verifier does not know makes it reload the
 * keys (at most once per cooldown), so a key rotation needs no restart.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { issuer, audience, clockToleranceSeconds = 30, keyRefetchCooldownSeconds = 30, rememberSeconds = 60 } = options;
  const getKey = keyResolver(options, keyRefetchCooldownSeconds * 1000);
  // Map keeps insertion order: the first entry is the oldest.
  const remembered = new Map<string, { principal: Principal; until: number }>();
  return {
    async verify(authorizationHeaderOrToken) {
      const token = bearerToken(authorizationHeaderOrToken);
      const known = remembered.get(token);
      if (known !== undefined) {
        if (Date.now() < known.until) return known.principal;
        remembered.delete(token);
      }
      try {
        decodeProtectedHeader(token);
      } catch {
        throw new AuthError("malformed_token", "the bearer token is not a JWS compact serialization");
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          issuer,
          audience,
          algorithms: ALGORITHMS,
          clockTolerance: clockToleranceSeconds,
          requiredClaims: ["sub", "exp"],
        }));
      } catch (error) {
        throw refusal(error, { issuer, audience });
      }
      const principal = principalOf(payload);
      if (rememberSeconds > 0) {
        if (remembered.size >= REMEMBERED_TOKENS) remembered.delete(remembered.keys().next().value!);
        remembered.set(token, { principal, until: Math.min(principal.expiresAt.getTime(), Date.now() + rememberSeconds * 1000) });
      }
      return principal;
    },
  };
}

/** The token from a header value or a bare token; an absent token and another scheme are both "no bearer token". */
function bearerToken(value: string | undefined): string {
  const trimmed = value?.trim() ?? "";
  if (trimmed === "" || trimmed.toLowerCase() === "bearer") throw new AuthError("missing_token", "a bearer token is required");
  const space = trimmed.indexOf(" ");
  if (space === -1) return trimmed;
  if (trimmed.slice(0, space).toLowerCase() !== "bearer") {
    throw new AuthError("missing_token", "a bearer token is required; the Authorization header uses another scheme");
  }
  const token = trimmed.slice(space + 1).trim();
  if (token === "" || /\s/.test(token)) throw new AuthError("malformed_token", "the Authorization header must be `Bearer <token>`");
  return token;
}

function keyResolver(options: TokenVerifierOptions, cooldownMs: number): JWTVerifyGetKey {
  const { jwksUrl, jwksFile } = options;
  if ((jwksUrl === undefined) === (jwksFile === undefined)) {
    throw new Error("createTokenVerifier: give exactly one of jwksUrl and jwksFile");
  }
  if (jwksUrl !== undefined) {
    const remote = createRemoteJWKSet(new URL(jwksUrl), { cooldownDuration: cooldownMs });
    return async (header) => {
      try {
        return await remote(header);
      } catch (error) {
        throw isKeySelectionError(error) ? error : new KeySetUnavailableError(jwksUrl, error);
      }
    };
  }
  return fileKeyResolver(jwksFile!, cooldownMs);
}

/**
 * Keys from a JWK Set file, read on first use and again, at most once per
 * cooldown, when a token names a key the last read did not have: whoever
 * rotates the key rewrites the file and verifiers follow.
 */
function fileKeyResolver(file: string, cooldownMs: number): JWTVerifyGetKey {
  let keys: ReturnType<typeof createLocalJWKSet> | undefined;
  let readAt = 0;
  const load = async () => {
    readAt = Date.now();
    try {
      keys = createLocalJWKSet(JSON.parse(await readFile(file, "utf8")) as JSONWebKeySet);
    } catch (error) {
      throw new KeySetUnavailableError(file, error);
    }
    return keys;
  };
  return async (header: JWSHeaderParameters) => {
    const current = keys ?? (await load());
    try {
      return await current(header);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || Date.now() - readAt < cooldownMs) throw error;
    }
    return (await load())(header);
  };
}

/** Errors that mean "this token names no key of ours", as opposed to "the keys could not be had". */
function isKeySelectionError(error: unknown): boolean {
  return error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys;
}

const CLAIM_REASONS: Record<string, InvalidTokenReason> = { nbf: "not_yet_valid", iss: "wrong_issuer", aud: "wrong_audience" };

/** Translates jose's failure into an AuthError whose message says what was wrong, never what the token held. */
function refusal(error: unknown, expected: { issuer: string; audience: string }): unknown {
  const invalid = (reason: InvalidTokenReason, message: string) => new AuthError("invalid_token", message, { reason });
  if (error instanceof errors.JWTExpired) return invalid("expired", "the token has expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    const reason = CLAIM_REASONS[error.claim] ?? "invalid_claims";
    if (reason === "not_yet_valid") return invalid(reason, "the token is not valid yet");
    if (reason === "wrong_issuer") return invalid(reason, `the token was not issued by ${expected.issuer}`);
    if (reason === "wrong_audience") return invalid(reason, `the token is not meant for ${expected.audience}`);
    return invalid(reason, `the token's "${error.claim}" claim is missing or invalid`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return invalid("algorithm_not_allowed", "the token's signing algorithm is not accepted");
  if (error instanceof errors.JWSSignatureVerificationFailed) return invalid("bad_signature", "the token's signature does not verify");
  if (isKeySelectionError(error)) return invalid("unknown_key", "the token is not signed by a key of the issuer");
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid || error instanceof errors.JOSENotSupported) {
    return new AuthError("malformed_token", "the bearer token is not a well-formed JWT");
  }
  return error;
}

function principalOf(payload: JWTPayload): Principal {
  if (typeof payload.sub !== "string" || payload.sub === "") {
    throw new AuthError("invalid_token", `the token's "sub" claim is missing or invalid`, { reason: "invalid_claims" });
  }
  const scopes = new Set<string>();
  for (const claim of [payload.scope, payload.scp]) {
    const names = typeof claim === "string" ? claim.split(" ") : Array.isArray(claim) ? claim : [];
    for (const name of names) if (typeof name === "string" && name !== "") scopes.add(name);
  }
  const clientId = [payload.client_id, payload.azp].find((value): value is string => typeof value === "string");
  return {
    subject: payload.sub,
    scopes,
    ...(clientId === undefined ? {} : { clientId }),
    expiresAt: new Date(payload.exp! * 1000),
  };
}
