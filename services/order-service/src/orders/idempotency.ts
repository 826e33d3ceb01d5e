import { createHash } from "node:crypto";
import { sql, type Kysely, type Transaction } from "kysely";
import type { Database } from "../db/database.ts";
import { AppError, idempotencyKeyInFlight, idempotencyKeyReused } from "../errors.ts";
import { problem } from "../plugins/problems.ts";

/**
 * Idempotency-Key, the way payment APIs do it. The first final response to
 * a key is stored with a hash of its request and replayed for the same key
 * and request; the same key with another request is refused (422); while a
 * request works on a key, the key is locked and others get 409.
 *
 * A lock is a lease (`locked_until`), so a key left locked by a crashed
 * process frees itself: the next retry after the lease takes the request
 * over and finishes it. For POST /orders the key is written in the statement
 * that stores the pending order, and its response in the statement that
 * settles the order, whoever settles it: the request, a retry that took it
 * over, or the reconciler. A 503 is not final (the order is still pending),
 * so it is not stored: the key is unlocked and a retry drives the same order
 * again.
 */

type Db = Kysely<Database> | Transaction<Database>;

/** The endpoints that honour Idempotency-Key, as their scope: a key is unique per caller and endpoint. */
export const IDEMPOTENT_ENDPOINTS = {
  placeOrder: "POST /orders",
  cancelOrder: "POST /orders/:id/cancel",
  fulfilOrder: "POST /orders/:id/fulfill",
} as const;
export type IdempotentEndpoint = (typeof IDEMPOTENT_ENDPOINTS)[keyof typeof IDEMPOTENT_ENDPOINTS];

/** Keys are kept this long at least, then pruned by the reconciler. */
const KEY_RETENTION_MS = 24 * 60 * 60 * 1000;

/** A request made under an Idempotency-Key. */
export interface IdempotentRequest {
  /** The caller (token subject) whose key it is: one caller's keys never meet another's. */
  subject: string;
  endpoint: IdempotentEndpoint;
  key: string;
  /** SHA-256 (hex) of the endpoint, the path parameters and the canonical body. */
  requestHash: string;
}

/** A response as the client gets it, and as it is stored for replay. */
export interface StoredResponse {
  status: number;
  body: unknown;
}

/** What an endpoint answers, and whether it replays a response stored earlier. */
export interface Answer {
  response: StoredResponse;
  replayed: boolean;
}

/** How a request under a key proceeds: with the work (it holds the key) or with a stored response. */
export type Begun = { kind: "run"; orderId: string } | { kind: "replay"; response: StoredResponse };

/**
 * Identifies a request of `subject` under `key`: the same endpoint, path
 * parameters and body (compared as canonical JSON, so key order and spacing
 * do not matter) make the same hash.
 */
export function idempotentRequest(
  subject: string,
  endpoint: IdempotentEndpoint,
  key: string,
  request: { params?: unknown; body?: unknown },
): IdempotentRequest {
  const hash = createHash("sha256")
    .update(`${endpoint}\n${canonicalJson(request.params ?? {})}\n${canonicalJson(request.body ?? null)}`)
    .digest("hex");
  return { subject, endpoint, key, requestHash: hash };
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The problem document the API answers an AppError with, as a response. */
export function errorResponse(error: AppError): StoredResponse {
  const body = problem(error.code, error.message, error.fields);
  return { status: body.status, body };
}

/**
 * Runs a use case and turns its result, or the AppError it throws, into the
 * response the client gets. Anything else is a defect and is thrown.
 */
export async function respond(status: number, work: () => Promise<unknown>): Promise<StoredResponse> {
  try {
    return { status, body: await work() };
  } catch (error) {
    if (error instanceof AppError) return errorResponse(error);
    throw error;
  }
}

/** A 503 (inventory unavailable) is not an outcome: retrying can still succeed, so it is never stored. */
export const isFinal = (response: StoredResponse): boolean => response.status !== 503;

const lockedFor = (ms: number) => sql<Date>`now() + make_interval(secs => ${ms / 1000})`;

/** The columns of a new key, locked for `lockMs` by its request. */
function newKeyRow(request: IdempotentRequest, orderId: string, lockMs: number) {
  return {
    subject: request.subject,
    endpoint: request.endpoint,
    key: request.key,
    request_hash: request.requestHash,
    order_id: orderId,
    locked_until: lockedFor(lockMs),
  };
}

/**
 * Starts a request under its key: a new key is written, locked for `lockMs`,
 * and the request runs; a used key goes through {@link takeOver}.
 */
export async function begin(db: Db, request: IdempotentRequest, orderId: string, lockMs: number): Promise<Begun> {
  const inserted = await db
    .insertInto("idempotency_keys")
    .values(newKeyRow(request, orderId, lockMs))
    .onConflict((oc) => oc.columns(["subject", "endpoint", "key"]).doNothing())
    .returning("order_id")
    .executeTakeFirst();
  return inserted ? { kind: "run", orderId } : takeOver(db, request, lockMs);
}

/**
 * Answers a request whose key was used before: its stored response when
 * there is one; 422 when the key was used for another request; 409 while
 * another request holds the key. A key that is neither finished nor locked
 * (its request crashed, or answered 503) is locked for this request, which
 * then runs the work again: every use case behind a key is safe to repeat.
 */
export async function takeOver(db: Db, request: IdempotentRequest, lockMs: number): Promise<Begun> {
  const row = await db
    .with("claimed", (qc) =>
      qc
        .updateTable("idempotency_keys")
        .set({ locked_until: lockedFor(lockMs) })
        .where("subject", "=", request.subject)
        .where("endpoint", "=", request.endpoint)
        .where("key", "=", request.key)
        .where("request_hash", "=", request.requestHash)
        .where("response_status", "is", null)
        .where((eb) => eb.or([eb("locked_until", "is", null), eb("locked_until", "<=", sql<Date>`now()`)]))
        .returning("order_id"),
    )
    .selectFrom("idempotency_keys")
    .select(["request_hash", "order_id", "response_status", "response_body"])
    .select((eb) => eb.exists(eb.selectFrom("claimed").select("order_id")).as("claimed"))
    .where("subject", "=", request.subject)
    .where("endpoint", "=", request.endpoint)
    .where("key", "=", request.key)
    .executeTakeFirst();
  // A key pruned this very moment: its request is long over; let the client retry.
  if (!row) throw idempotencyKeyInFlight(request.key);
  if (row.request_hash !== request.requestHash) throw idempotencyKeyReused(request.key);
  if (row.response_status !== null) return { kind: "replay", response: { status: row.response_status, body: row.response_body } };
  if (row.claimed) return { kind: "run", orderId: row.order_id };
  throw idempotencyKeyInFlight(request.key);
}

/**
 * Ends a request that holds its key: stores a final response (unless one
 * was stored meanwhile, for example by the reconciler, which then wins and
 * is answered as a replay), or unlocks the key so that a retry can run
 * again.
 */
export async function finish(db: Db, request: IdempotentRequest, response: StoredResponse): Promise<Answer> {
  if (!isFinal(response)) {
    await unlock(db, request);
    return { response, replayed: false };
  }
  const stored = await db
    .updateTable("idempotency_keys")
    .set(responseColumns(response))
    .where("subject", "=", request.subject)
    .where("endpoint", "=", request.endpoint)
    .where("key", "=", request.key)
    .where("response_status", "is", null)
    .returning("order_id")
    .executeTakeFirst();
  if (stored) return { response, replayed: false };
  const first = await db
    .selectFrom("idempotency_keys")
    .select(["response_status", "response_body"])
    .where("subject", "=", request.subject)
    .where("endpoint", "=", request.endpoint)
    .where("key", "=", request.key)
    .executeTakeFirst();
  if (first?.response_status == null) return { response, replayed: false };
  return { response: { status: first.response_status, body: first.response_body }, replayed: true };
}

/**
 * Runs the work of a request that holds its key (when it has one). A defect
 * unlocks the key on the way out, so a retry need not wait for the lease.
 */
export async function holding(
  db: Db,
  request: IdempotentRequest | undefined,
  work: () => Promise<StoredResponse>,
): Promise<StoredResponse> {
  try {
    return await work();
  } catch (error) {
    if (request) await unlock(db, request).catch(() => {});
    throw error;
  }
}

/** Unlocks a key whose request ends without a final response, so a retry need not wait for the lease. */
export async function unlock(db: Db, request: IdempotentRequest): Promise<void> {
  await db
    .updateTable("idempotency_keys")
    .set({ locked_until: null })
    .where("subject", "=", request.subject)
    .where("endpoint", "=", request.endpoint)
    .where("key", "=", request.key)
    .where("response_status", "is", null)
    .execute();
}

/**
 * The update that stores the final response of placing an order on its key,
 * if it has an unfinished one. The statements that settle an order embed it,
 * guarded by their own outcome, so whoever settles the order answers its
 * key too.
 */
export function storePlacementResponse(db: Db, orderId: string, response: StoredResponse) {
  return db
    .updateTable("idempotency_keys")
    .set(responseColumns(response))
    .where("order_id", "=", orderId)
    .where("endpoint", "=", IDEMPOTENT_ENDPOINTS.placeOrder)
    .where("response_status", "is", null);
}

function responseColumns(response: StoredResponse) {
  return { response_status: response.status, response_body: JSON.stringify(response.body), locked_until: null };
}

/** Deletes up to `limit` keys older than the retention period, oldest first; returns how many. */
export async function pruneKeys(db: Db, limit: number): Promise<number> {
  const result = await db
    .deleteFrom("idempotency_keys")
    .where(({ eb, refTuple, selectFrom }) =>
      eb(
        refTuple("subject", "endpoint", "key"),
        "in",
        selectFrom("idempotency_keys")
          .select(["subject", "endpoint", "key"])
          .where("created_at", "<", sql<Date>`now() - make_interval(secs => ${KEY_RETENTION_MS / 1000})`)
          .orderBy("created_at")
          .limit(limit)
          .forUpdate()
          .skipLocked()
          .$asTuple("subject", "endpoint", "key"),
      ),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
