import cors from "@fastify/cors";
import fastifyHelmet from "@fastify/helmet";
import rateLimit from "@fastify/rate-limit";
import fp from "fastify-plugin";
import helmet from "helmet";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Config } from "../config.ts";
import { rateLimited } from "../errors.ts";

/** The security headers' settings: the same for routed answers and for raw ones (securityHeaders). */
const HELMET_OPTIONS = {
  contentSecurityPolicy: {
    directives: {
      // Swagger UI at /docs is served over plain HTTP in development;
      // upgrading its requests to HTTPS would break it there.
      upgradeInsecureRequests: null,
    },
  },
} satisfies Parameters<typeof helmet>[0];

/**
 * The security headers helmet sets on every routed response, for answers
 * written straight to a socket (errors of Node's HTTP parser and its
 * timeouts), which no hook sees. Helmet's headers do not depend on the
 * request, so they are taken once from helmet itself, with the plugin's
 * settings.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = (() => {
  const headers: Record<string, string> = {};
  const response = {
    setHeader: (name: string, value: string | number | readonly string[]) => {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : String(value);
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(HELMET_OPTIONS)({} as IncomingMessage, response as unknown as ServerResponse, () => {});
  return Object.freeze(headers);
})();

/**
 * Security headers on every response, CORS for the configured origins only,
 * and a request budget per client. Registered before the routes: the rate
 * limiter attaches itself to each route as it is added.
 */
export const protectionPlugin = fp<Config>(
  async (app, config) => {
    await app.register(fastifyHelmet, HELMET_OPTIONS);

    if (config.corsOrigins.length > 0) {
      await app.register(cors, {
        origin: config.corsOrigins.includes("*") ? "*" : [...config.corsOrigins],
        methods: ["GET", "POST"],
        allowedHeaders: ["authorization", "content-type", "idempotency-key", "x-request-id"],
        exposedHeaders: [
          "location",
          "retry-after",
          "x-request-id",
          "idempotent-replayed",
          "x-ratelimit-limit",
          "x-ratelimit-remaining",
          "x-ratelimit-reset",
        ],
        maxAge: 600,
      });
    }

    if (config.rateLimitMax > 0) {
      await app.register(rateLimit, {
        max: config.rateLimitMax,
        timeWindow: config.rateLimitWindowMs,
        // A budget per caller: the token's subject once authenticated (the
        // auth plugin's onRequest hook runs before the limiter's route hook),
        // else the address, for anonymous callers and refused tokens.
        keyGenerator: (request) => (request.principal ? `sub:${request.principal.subject}` : `ip:${request.ip}`),
        errorResponseBuilder: (_request, context) => rateLimited(Math.max(1, Math.ceil(context.ttl / 1000))),
      });
    }
  },
  { name: "protection", dependencies: ["problems", "auth"] },
);
