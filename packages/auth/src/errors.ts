/**
 * Why a request's credentials were refused, in the vocabulary of RFC 6750
 * (bearer tokens), and the failures of the machinery around them. An edge
 * maps {@link AuthError} to its status in one place: `insufficient_scope` is
 * 403 / PERMISSION_DENIED, every other code 401 / UNAUTHENTICATED, with
 * {@link wwwAuthenticate} as the HTTP challenge.
 */

export type AuthErrorCode = "missing_token" | "malformed_token" | "invalid_token" | "insufficient_scope";

/** Why a well-formed token was refused; for logs and metrics, not for branching by callers. */
export type InvalidTokenReason =
  | "expired"
  | "not_yet_valid"
  | "wrong_issuer"
  | "wrong_audience"
  | "bad_signature"
  | "unknown_key"
  | "algorithm_not_allowed"
  | "invalid_claims";

/**
 * A refused credential. Its message is written for the caller and never
 * contains the token or any of its claims, so it is safe to answer and log.
 */
export class AuthError extends Error {
  readonly code: AuthErrorCode;
  /** Set when code is `invalid_token`. */
  readonly reason: InvalidTokenReason | undefined;
  /** Set when code is `insufficient_scope`: every scope the operation needs. */
  readonly requiredScopes: readonly string[];

  constructor(code: AuthErrorCode, message: string, details: { reason?: InvalidTokenReason; requiredScopes?: readonly string[] } = {}) {
    super(message);
    this.name = "AuthError";
    this.code = code;
    this.reason = details.reason;
    this.requiredScopes = details.requiredScopes ?? [];
  }
}

/**
 * The keys that tokens are checked against could not be had (the JWKS URL
 * is unreachable or answers garbage, the JWKS file is unreadable). Not the
 * caller's fault: an edge answers 503 / UNAVAILABLE, not 401.
 */
export class KeySetUnavailableError extends Error {
  constructor(source: string, cause: unknown) {
    super(`cannot load the token signing keys from ${source}: ${describeError(cause)}`, { cause });
    this.name = "KeySetUnavailableError";
  }
}

/** A token endpoint refused a grant or could not be reached; the message says which and why. */
export class TokenRequestError extends Error {
  /** The OAuth error code the endpoint answered (`invalid_client`, ...), if it answered one. */
  readonly error: string | undefined;

  constructor(message: string, options: { error?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "TokenRequestError";
    this.error = options.error;
  }
}

/**
 * The value of the `WWW-Authenticate` header for a 401 or 403 answer (RFC
 * 6750 §3). A request without a token gets the bare challenge, as §3.1 asks;
 * a refused token gets `error="invalid_token"`; a missing scope gets
 * `error="insufficient_scope"` and the scopes needed.
 */
export function wwwAuthenticate(error: AuthError, options: { realm?: string } = {}): string {
  const params: string[] = [];
  if (options.realm !== undefined) params.push(`realm=${quote(options.realm)}`);
  if (error.code !== "missing_token") {
    params.push(`error=${quote(error.code === "insufficient_scope" ? "insufficient_scope" : "invalid_token")}`);
    params.push(`error_description=${quote(error.message)}`);
  }
  if (error.code === "insufficient_scope") params.push(`scope=${quote(error.requiredScopes.join(" "))}`);
  return params.length === 0 ? "Bearer" : `Bearer ${params.join(", ")}`;
}

/** An RFC 6750 quoted value: its grammar allows printable ASCII except `"` and `\`. */
function quote(value: string): string {
  return `"${value.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "'")}"`;
}

/** An error's message, with the cause that fetch() hides the useful part in (ECONNREFUSED, ...). */
export function describeError(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  return cause.cause instanceof Error ? `${cause.message} (${cause.cause.message})` : cause.message;
}
