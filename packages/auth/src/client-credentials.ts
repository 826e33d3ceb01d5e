import { describeError, TokenRequestError } from "./errors.ts";

/** Where a client gets the bearer token for its next call. */
export interface TokenSource {
  token(): Promise<string>;
}

export interface ClientCredentialsOptions {
  /** The issuer's token endpoint. */
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Space-separated scopes to ask for; the issuer's default when absent. */
  scope?: string;
  /** The API the token is for (the `audience` parameter); the issuer's default when absent. */
  audience?: string;
  /** How long one token request may take. */
  timeoutMs?: number;
}

/** Lifetime assumed when the issuer does not say (`expires_in` is only RECOMMENDED). */
const DEFAULT_LIFETIME_MS = 60_000;
/** Refresh this long before expiry, when the lifetime leaves room for it. */
const REFRESH_MARGIN_MS = 30_000;
/** After a failed refresh while the cached token still works, wait this long before asking again. */
const RETRY_AFTER_FAILURE_MS = 5_000;

interface Cached {
  token: string;
  refreshAt: number;
  expiresAt: number;
}

/**
 * A token source for calls from one service to another: the OAuth 2.0
 * client-credentials grant (RFC 6749 §4.4) with client_secret_basic. The
 * token is cached and replaced before it expires (once 80% of its lifetime
 * has passed or 30 s are left, whichever is first, but never in the first
 * half of its lifetime), so a token is never sent as it expires;
 * concurrent callers share one request. When a refresh fails while the cached token
 * is still valid, callers keep that token and the refresh is retried a few
 * seconds later; with no valid token, {@link TokenRequestError} says
 * whether the issuer refused (and why) or could not be reached.
 */
export function createClientCredentialsSource(options: ClientCredentialsOptions): TokenSource {
  const { tokenUrl, clientId, clientSecret, scope, audience, timeoutMs = 10_000 } = options;
  const form = (value: string) => encodeURIComponent(value).replace(/%20/g, "+");
  const authorization = `Basic ${Buffer.from(`${form(clientId)}:${form(clientSecret)}`).toString("base64")}`;
  let cached: Cached | undefined;
  let inFlight: Promise<string> | undefined;

  const request = async (): Promise<string> => {
    const sentAt = Date.now();
    const body = new URLSearchParams({ grant_type: "client_credentials" });
    if (scope !== undefined) body.set("scope", scope);
    if (audience !== undefined) body.set("audience", audience);
    let response: Response;
    try {
      response = await fetch(tokenUrl, {
        method: "POST",
        headers: { authorization, "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new TokenRequestError(`token endpoint ${tokenUrl} is unreachable: ${describeError(error)}`, { cause: error });
    }
    const answer = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok || typeof answer.access_token !== "string") {
      const error = typeof answer.error === "string" ? answer.error : undefined;
      const description = typeof answer.error_description === "string" ? `: ${answer.error_description}` : "";
      throw new TokenRequestError(
        `token endpoint ${tokenUrl} refused client ${clientId}: ${response.status} ${error ?? "without an access token"}${description}`,
        error === undefined ? {} : { error },
      );
    }
    // Counted from when the request was sent, so the token is never thought younger than it is.
    const lifetime = typeof answer.expires_in === "number" && answer.expires_in > 0 ? answer.expires_in * 1000 : DEFAULT_LIFETIME_MS;
    const expiresAt = sentAt + lifetime;
    const refreshAt = Math.min(sentAt + 0.8 * lifetime, Math.max(expiresAt - REFRESH_MARGIN_MS, sentAt + 0.5 * lifetime));
    cached = { token: answer.access_token, refreshAt, expiresAt };
    return answer.access_token;
  };

  const refresh = (): Promise<string> => {
    inFlight ??= request()
      .catch((error: unknown) => {
        const now = Date.now();
        if (cached === undefined || cached.expiresAt <= now) throw error;
        cached.refreshAt = now + RETRY_AFTER_FAILURE_MS;
        return cached.token;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };

  return {
    async token() {
      if (cached !== undefined && Date.now() < cached.refreshAt) return cached.token;
      return refresh();
    },
  };
}

/** A fixed token, for a caller configured with one (INVENTORY_TOKEN, tests). */
export function staticTokenSource(token: string): TokenSource {
  return { token: async () => token };
}
