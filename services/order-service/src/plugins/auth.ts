import { AuthError } from "@ecommerce/auth/errors.ts";
import { createTokenVerifier, type Principal, type TokenVerifierOptions } from "@ecommerce/auth/verifier.ts";
import type { FastifyRequest } from "fastify";
import fp from "fastify-plugin";

declare module "fastify" {
  interface FastifyRequest {
    /**
     * Who the bearer token speaks for: set on every route under the
     * protected prefix before its handler runs (a request without a valid
     * token never reaches one), undefined elsewhere.
     */
    principal: Principal | undefined;
  }
}

export interface AuthPluginOptions {
  /** Issuer, audience, where its keys are, clock tolerance: see packages/auth. */
  verifier: TokenVerifierOptions;
  /** Routes under this prefix need a bearer token; probes, docs and metrics do not. */
  prefix: string;
}

/** Why a request's token was refused, kept from onRequest until the request is turned away. */
const refusals = new WeakMap<FastifyRequest, unknown>();

/**
 * OAuth 2.0 bearer tokens (RFC 6750) on every route under `prefix`. The
 * token is verified in onRequest, before the rate limiter's own onRequest
 * hook (route hooks run after the app's), so the limiter keys a caller by
 * subject. A refused token is answered in preParsing: after the limiter has
 * counted the request (floods of bad tokens are limited by address) and
 * before any body is read. Refusals are 401 with a WWW-Authenticate
 * challenge, keys that cannot be loaded 503 (plugins/problems.ts).
 */
export const authPlugin = fp<AuthPluginOptions>(
  async (app, { verifier: options, prefix }) => {
    const verifier = createTokenVerifier(options);
    const isProtected = (request: FastifyRequest) => request.routeOptions.url?.startsWith(`${prefix}/`) === true;
    app.decorateRequest("principal", undefined);

    app.addHook("onRequest", async (request) => {
      if (!isProtected(request)) return;
      try {
        request.principal = await verifier.verify(request.headers.authorization);
      } catch (error) {
        refusals.set(request, error);
      }
    });
    app.addHook("preParsing", async (request) => {
      if (refusals.has(request)) throw refusals.get(request);
    });
  },
  { name: "auth", dependencies: ["problems"] },
);

/** The principal of a request on a protected route; a route outside the prefix asking for one is a defect. */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === undefined) throw new AuthError("missing_token", "a bearer token is required");
  return request.principal;
}
