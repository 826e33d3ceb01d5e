import type { Interceptor } from "@connectrpc/connect";
import { hasScopes, INVENTORY_RESERVE } from "@ecommerce/auth/scopes.ts";
import { inventoryErrors } from "../stock/errors.ts";
import { callerOf } from "./authentication.ts";

/** How many calls one caller may make: a token bucket of `perCaller` calls refilled over `windowMs`. */
export interface CallerBudgetSettings {
  /** Calls per window, and the burst a rested caller may make at once; 0: no budget. */
  readonly perCaller: number;
  readonly windowMs: number;
}

/**
 * 1,200 calls a minute (20 a second, sustained, after a burst of 1,200)
 * is far beyond what a person with buf curl or a catalogue tool makes, and
 * low enough that one runaway script cannot take the database's capacity
 * from the order flow.
 */
export const DEFAULT_CALLER_BUDGET: CallerBudgetSettings = Object.freeze({ perCaller: 1200, windowMs: 60_000 });

/**
 * The most callers whose buckets are kept. Subjects come from verified
 * tokens only, so the set is bounded by what the issuer mints; past this,
 * the caller seen least recently is forgotten (and starts again full).
 */
export const MAX_TRACKED_CALLERS = 10_000;

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

/**
 * Interceptor that gives each caller (the token's subject) its own budget
 * of calls and refuses calls past it as RESOURCE_EXHAUSTED, so that one
 * caller cannot starve the others. Two kinds of call are not counted:
 * anonymous ones (Health, public reflection: nobody to count them against,
 * and the edge's connection and stream bounds cover them), and calls of
 * holders of `inventory:reserve`, the order service's own identity, whose
 * calls are the customers' orders: throttling it would refuse orders, and
 * the order service bounds its customers at its own edge.
 */
export function callerBudget(settings: CallerBudgetSettings, now: () => number = Date.now): Interceptor {
  const { perCaller, windowMs } = settings;
  if (perCaller === 0) return (next) => next;
  const refillPerMs = perCaller / windowMs;
  const buckets = new Map<string, Bucket>();
  const take = (subject: string): boolean => {
    const time = now();
    const bucket = buckets.get(subject) ?? { tokens: perCaller, at: time };
    // Re-inserted on every call: the Map's first key is the least recently seen caller.
    buckets.delete(subject);
    buckets.set(subject, bucket);
    if (buckets.size > MAX_TRACKED_CALLERS) buckets.delete(buckets.keys().next().value!);
    bucket.tokens = Math.min(perCaller, bucket.tokens + (time - bucket.at) * refillPerMs);
    bucket.at = time;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  };
  return (next) => async (req) => {
    const caller = callerOf(req.contextValues);
    if (caller !== undefined && !hasScopes(caller, INVENTORY_RESERVE) && !take(caller.subject)) {
      throw inventoryErrors.callerBudgetExceeded(perCaller, windowMs);
    }
    return next(req);
  };
}
