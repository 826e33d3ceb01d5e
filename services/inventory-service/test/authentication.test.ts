import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createContextValues, type Client, type Interceptor, type UnaryRequest } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { INVENTORY_API, ORDERS_API } from "@ecommerce/auth/audiences.ts";
import { mintToken, rotateSigningKey } from "@ecommerce/auth/dev-issuer.ts";
import { INVENTORY_ADMIN, INVENTORY_READ, INVENTORY_RESERVE } from "@ecommerce/auth/scopes.ts";
import { createTokenVerifier } from "@ecommerce/auth/verifier.ts";
import { Health } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import { ServerReflection, ServerReflectionRequestSchema } from "@ecommerce/gen/grpc/reflection/v1/reflection_pb.ts";
import { AdjustmentReason, InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { generateKeyPair, SignJWT, type JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { authentication, RPC_SCOPES } from "../src/interceptors/authentication.ts";
import { toStatus } from "../src/stock/errors.ts";
import { ALL_INVENTORY_SCOPES, bearer, rpcError, startHarness, type Harness } from "./inventory-harness.ts";

// Who may do what at the gRPC edge, over real sockets with real keys: every
// caller against every RPC, the tokens that must be refused, key rotation,
// who the ledger names, and the budget per caller.

/** A caller as the edge sees it: the token it sends, if any. */
interface Callers {
  inventory: Client<typeof InventoryService>;
  health: Client<typeof Health>;
  reflection: Client<typeof ServerReflection>;
}

function callersWith(url: string, interceptors: Interceptor[]): Callers {
  const transport = createGrpcTransport({ baseUrl: url, interceptors });
  return {
    inventory: createClient(InventoryService, transport),
    health: createClient(Health, transport),
    reflection: createClient(ServerReflection, transport),
  };
}

/** "OK" or the gRPC status name a call ends with. */
async function outcomeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "OK";
  } catch (e) {
    return Code[ConnectError.from(e).code];
  }
}

/** Lists the services by reflection: one question, one answer, on a stream. */
async function listServices(client: Client<typeof ServerReflection>): Promise<void> {
  const questions = async function* () {
    yield create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
  };
  for await (const _answer of client.serverReflectionInfo(questions())) {
    // drained
  }
}

const OK = "OK";
const UNAUTHENTICATED = Code[Code.Unauthenticated];
const DENIED = Code[Code.PermissionDenied];

const CALLERS = ["anonymous", "customer of orders-api", "inventory:read", "order service (inventory:reserve)", "inventory:admin"] as const;
type Caller = (typeof CALLERS)[number];

// prettier-ignore
/** The expected outcome of each call for each caller, in the order of CALLERS. */
const WHO_MAY_DO_WHAT: Record<string, readonly [string, string, string, string, string]> = {
  //                         anonymous        customer         read    reserve  admin
  CheckStock:               [UNAUTHENTICATED, UNAUTHENTICATED, OK,     DENIED,  OK],
  GetProduct:               [UNAUTHENTICATED, UNAUTHENTICATED, OK,     DENIED,  OK],
  ListProducts:             [UNAUTHENTICATED, UNAUTHENTICATED, OK,     DENIED,  OK],
  ListEvents:               [UNAUTHENTICATED, UNAUTHENTICATED, OK,     DENIED,  OK],
  ReserveStock:             [UNAUTHENTICATED, UNAUTHENTICATED, DENIED, OK,      DENIED],
  ReserveOrders:            [UNAUTHENTICATED, UNAUTHENTICATED, DENIED, OK,      DENIED],
  ReleaseStock:             [UNAUTHENTICATED, UNAUTHENTICATED, DENIED, OK,      DENIED],
  CommitStock:              [UNAUTHENTICATED, UNAUTHENTICATED, DENIED, OK,      DENIED],
  ConfirmReservations:      [UNAUTHENTICATED, UNAUTHENTICATED, DENIED, OK,      DENIED],
  CreateProduct:            [UNAUTHENTICATED, UNAUTHENTICATED, DENIED, DENIED,  OK],
  AdjustStock:              [UNAUTHENTICATED, UNAUTHENTICATED, DENIED, DENIED,  OK],
  "Health/Check":           [OK,              OK,              OK,     OK,      OK],
  "ServerReflectionInfo":   [OK,              OK,              OK,     OK,      OK],
};

let h: Harness;
let callers: Record<Caller, Callers>;
let productId: string;
let skus = 0;

/** An order reserved by the harness's own client, for CommitStock to commit. */
async function reservedOrder(): Promise<string> {
  const orderId = randomUUID();
  await h.client.reserveStock({ orderId, lines: [{ productId, quantity: 1 }] });
  return orderId;
}

/** A call of each RPC that succeeds for whoever may make it. */
const CALLS: Record<string, (c: Callers) => Promise<unknown>> = {
  CheckStock: (c) => c.inventory.checkStock({ lines: [{ productId, quantity: 1 }] }),
  GetProduct: (c) => c.inventory.getProduct({ productId }),
  ListProducts: (c) => c.inventory.listProducts({}),
  ListEvents: (c) => c.inventory.listEvents({ pageSize: 1 }),
  ReserveStock: (c) => c.inventory.reserveStock({ orderId: randomUUID(), lines: [{ productId, quantity: 1 }] }),
  ReserveOrders: (c) => c.inventory.reserveOrders({ orders: [{ orderId: randomUUID(), lines: [{ productId, quantity: 1 }] }] }),
  ReleaseStock: (c) => c.inventory.releaseStock({ orderId: randomUUID(), reason: "cancelled" }),
  CommitStock: async (c) => c.inventory.commitStock({ orderId: await reservedOrder() }),
  ConfirmReservations: (c) => c.inventory.confirmReservations({ orderIds: [randomUUID()] }),
  CreateProduct: (c) =>
    c.inventory.createProduct({ sku: `AUTH-${++skus}-${Date.now()}`, name: "Authorized", priceMinor: 100n, currency: "USD", initialStock: 1 }),
  AdjustStock: (c) => c.inventory.adjustStock({ productId, change: { case: "delta", value: 1 }, reason: AdjustmentReason.RESTOCK }),
  "Health/Check": (c) => c.health.check({}),
  ServerReflectionInfo: (c) => listServices(c.reflection),
};

beforeAll(async () => {
  // Keys are reloaded for an unknown key id at most once a second, so a rotation shows within the test.
  h = await startHarness({ auth: { keyRefetchCooldownSeconds: 1 } });
  const withToken = (token: Promise<string>) => callersWith(h.server.url, [bearer(token)]);
  callers = {
    anonymous: callersWith(h.server.url, []),
    "customer of orders-api": withToken(h.issuer.token("alice", { audience: ORDERS_API })),
    "inventory:read": withToken(h.token("catalogue-reader", [INVENTORY_READ])),
    "order service (inventory:reserve)": withToken(h.token("order-service", [INVENTORY_RESERVE], { clientId: "order-service" })),
    "inventory:admin": withToken(h.token("ops", [INVENTORY_ADMIN])),
  };
  productId = (await h.product({ initialStock: 1_000_000 })).id;
});
afterAll(() => h.close());

describe("who may do what", () => {
  it("declares a scope for every InventoryService RPC, and the table covers each", () => {
    const methods = InventoryService.methods.map((m) => m.name).sort();
    expect(Object.keys(RPC_SCOPES).sort()).toEqual(methods);
    expect(Object.keys(WHO_MAY_DO_WHAT).filter((k) => k in RPC_SCOPES).sort()).toEqual(methods);
  });

  const cells = Object.entries(WHO_MAY_DO_WHAT).flatMap(([call, row]) => CALLERS.map((caller, i) => ({ call, caller, expected: row[i]! })));
  it.each(cells)("$call by $caller: $expected", async ({ call, caller, expected }) => {
    expect(await outcomeOf(CALLS[call]!(callers[caller]))).toBe(expected);
  });

  it("refuses, to a holder of every scope, an RPC the table does not list", async () => {
    const interceptor = authentication({
      verifier: createTokenVerifier({ issuer: h.issuer.issuer, audience: INVENTORY_API, jwksFile: h.issuer.jwksFile }),
      reflectionPublic: true,
    });
    const token = await h.token("root", ALL_INVENTORY_SCOPES);
    const unlisted = {
      service: InventoryService,
      method: { name: "DropAllStock" },
      header: new Headers({ authorization: `Bearer ${token}` }),
      contextValues: createContextValues(),
    } as unknown as UnaryRequest;
    const next = vi.fn();
    const refusal = await interceptor(next)(unlisted).catch((e: unknown) => e);
    expect(next).not.toHaveBeenCalled();
    expect(toStatus(refusal)).toMatchObject({ code: Code.PermissionDenied, message: "no scope grants inventory.v1.InventoryService/DropAllStock" });
  });

  it("names the scope a refused caller lacks, and what includes it", async () => {
    const reserve = await rpcError(CALLS.ReserveStock!(callers["inventory:read"]));
    expect(reserve.rawMessage).toBe("ReserveStock needs the scope inventory:reserve");
    const read = await rpcError(CALLS.GetProduct!(callers["order service (inventory:reserve)"]));
    expect(read.rawMessage).toBe("GetProduct needs the scope inventory:read (or inventory:admin, which includes it)");
  });

  it("answers a call without a token as UNAUTHENTICATED, saying a bearer token is required", async () => {
    const error = await rpcError(CALLS.ListProducts!(callers.anonymous));
    expect(error).toMatchObject({ code: Code.Unauthenticated, rawMessage: "a bearer token is required" });
  });
});

describe("tokens the edge refuses", () => {
  const dir = () => path.dirname(h.issuer.jwksFile);
  const claims = { subject: "mallory", audience: INVENTORY_API, scopes: [INVENTORY_ADMIN] };
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const hour = 3600_000;

  const BAD_TOKENS: [string, () => Promise<string>, RegExp][] = [
    ["expired", () => mintToken({ dir: dir(), issuer: h.issuer.issuer, ...claims, ttlSeconds: 60, now: new Date(Date.now() - hour) }), /expired/],
    ["not yet valid", () => mintToken({ dir: dir(), issuer: h.issuer.issuer, ...claims, now: new Date(Date.now() + hour) }), /not valid yet/],
    ["from another issuer", () => mintToken({ dir: dir(), issuer: "https://elsewhere.invalid", ...claims }), /not issued by/],
    ["for another audience", () => mintToken({ dir: dir(), issuer: h.issuer.issuer, ...claims, audience: "billing-api" }), /not meant for inventory-api/],
    ["for orders-api (a customer's)", () => h.issuer.token("alice", { audience: ORDERS_API }), /not meant for inventory-api/],
    [
      "unsigned (alg: none)",
      async () => {
        const now = Math.floor(Date.now() / 1000);
        return `${b64({ alg: "none", typ: "JWT" })}.${b64({ iss: h.issuer.issuer, aud: INVENTORY_API, sub: "mallory", scope: INVENTORY_ADMIN, exp: now + 600 })}.`;
      },
      /algorithm|not a well-formed|signature/,
    ],
    [
      "signed with HMAC, the public key as its secret",
      async () => {
        const jwks = JSON.parse(await readFile(h.issuer.jwksFile, "utf8")) as JSONWebKeySet;
        const key = jwks.keys[0]!;
        return new SignJWT({ scope: INVENTORY_ADMIN })
          .setProtectedHeader({ alg: "HS256", kid: key.kid! })
          .setIssuer(h.issuer.issuer)
          .setAudience(INVENTORY_API)
          .setSubject("mallory")
          .setExpirationTime("10m")
          .sign(new TextEncoder().encode(JSON.stringify(key)));
      },
      /algorithm/,
    ],
    [
      "with a tampered payload",
      async () => {
        const [header, payload, signature] = (await h.token("reader", [INVENTORY_READ])).split(".");
        const claimsOf = JSON.parse(Buffer.from(payload!, "base64url").toString()) as Record<string, unknown>;
        return `${header}.${b64({ ...claimsOf, scope: INVENTORY_ADMIN })}.${signature}`;
      },
      /signature does not verify/,
    ],
    [
      "signed by a key the issuer does not publish",
      async () => {
        const { privateKey } = await generateKeyPair("ES256", { extractable: true });
        return new SignJWT({ scope: INVENTORY_ADMIN })
          .setProtectedHeader({ alg: "ES256", kid: "not-a-key-of-the-issuer" })
          .setIssuer(h.issuer.issuer)
          .setAudience(INVENTORY_API)
          .setSubject("mallory")
          .setExpirationTime("10m")
          .sign(privateKey);
      },
      /not signed by a key of the issuer/,
    ],
    ["that is not a JWT at all", async () => "not-a-jwt", /not a JWS|not a well-formed/],
  ];

  it.each(BAD_TOKENS)("refuses a token %s as UNAUTHENTICATED, without repeating it", async (_name, make, message) => {
    const token = await make();
    const client = createClient(InventoryService, createGrpcTransport({ baseUrl: h.server.url, interceptors: [bearer(token)] }));
    const error = await rpcError(client.adjustStock({ productId, change: { case: "delta", value: 1 }, reason: AdjustmentReason.RESTOCK }));
    expect(error.code).toBe(Code.Unauthenticated);
    expect(error.rawMessage).toMatch(message);
    for (const part of [token, ...token.split(".")].filter((p) => p.length > 8)) expect(error.rawMessage).not.toContain(part);
  });

  it("refuses another scheme than Bearer as UNAUTHENTICATED", async () => {
    const basic: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Basic ${Buffer.from("ops:secret").toString("base64")}`);
      return next(req);
    };
    const client = createClient(InventoryService, createGrpcTransport({ baseUrl: h.server.url, interceptors: [basic] }));
    const error = await rpcError(client.listProducts({}));
    expect(error).toMatchObject({ code: Code.Unauthenticated });
    expect(error.rawMessage).not.toContain("secret");
  });
});

describe("key rotation", () => {
  it("accepts a token of a newly rotated-in key without a restart, and tokens of the previous key still", async () => {
    const before = await h.token("ops", [INVENTORY_READ]);
    const client = (token: string) => createClient(InventoryService, createGrpcTransport({ baseUrl: h.server.url, interceptors: [bearer(token)] }));
    expect(await outcomeOf(client(before).listProducts({}))).toBe(OK);
    await rotateSigningKey(path.dirname(h.issuer.jwksFile));
    const after = await h.token("ops", [INVENTORY_READ]);
    expect(JSON.parse(Buffer.from(after.split(".")[0]!, "base64url").toString()).kid).not.toBe(
      JSON.parse(Buffer.from(before.split(".")[0]!, "base64url").toString()).kid,
    );
    // Within the reload cooldown of the key set (1 s here, 30 s by default).
    await vi.waitFor(async () => expect(await outcomeOf(client(after).listProducts({}))).toBe(OK), { timeout: 3000, interval: 200 });
    expect(await outcomeOf(client(before).listProducts({}))).toBe(OK);
  });
});

describe("the ledger's actor", () => {
  const ledger = (where: { orderId?: string; productId?: string }) => {
    let query = h.server.db.selectFrom("stock_movements").select(["kind", "actor"]).orderBy("id");
    if (where.orderId) query = query.where("order_id", "=", where.orderId);
    if (where.productId) query = query.where("product_id", "=", where.productId);
    return query.execute();
  };

  it("is the token's subject for CreateProduct and AdjustStock, and a request naming someone else is refused", async () => {
    const admin = callers["inventory:admin"].inventory;
    const { product } = await admin.createProduct({ sku: `ACTOR-${Date.now()}`, name: "Ledger", priceMinor: 1n, currency: "USD", initialStock: 5 });
    const { movement } = await admin.adjustStock({ productId: product!.id, change: { case: "delta", value: 2 }, reason: AdjustmentReason.RESTOCK });
    expect(movement?.actor).toBe("ops");
    await admin.adjustStock({ productId: product!.id, change: { case: "delta", value: -1 }, reason: AdjustmentReason.WRITE_OFF, actor: "ops" });
    const impostor = await rpcError(
      admin.adjustStock({ productId: product!.id, change: { case: "delta", value: 1 }, reason: AdjustmentReason.RESTOCK, actor: "alice" }),
    );
    expect(impostor).toMatchObject({ code: Code.InvalidArgument });
    expect(impostor.rawMessage).toMatch(/^actor must be empty or the caller's own subject/);
    expect(await ledger({ productId: product!.id })).toEqual([
      { kind: "initial", actor: "ops" },
      { kind: "restock", actor: "ops" },
      { kind: "write_off", actor: "ops" },
    ]);
  });

  it("is the calling client for reservations, releases and commits, order by order when one batch serves several callers", async () => {
    const serviceA = callersWith(h.server.url, [bearer(h.token("svc-a", [INVENTORY_RESERVE], { clientId: "orders-a" }))]).inventory;
    const serviceB = callersWith(h.server.url, [bearer(h.token("svc-b", [INVENTORY_RESERVE]))]).inventory;
    const lines = [{ productId, quantity: 1 }];
    // Concurrent calls share batches: each order must still name its own caller.
    const orders = Array.from({ length: 40 }, (_, i) => ({ orderId: randomUUID(), client: i % 2 ? serviceA : serviceB, actor: i % 2 ? "orders-a" : "svc-b" }));
    await Promise.all(orders.map((o) => o.client.reserveStock({ orderId: o.orderId, lines })));
    await Promise.all(orders.map((o, i) => (i % 4 < 2 ? o.client.commitStock({ orderId: o.orderId }) : o.client.releaseStock({ orderId: o.orderId, reason: "cancelled" }))));
    for (const [i, o] of orders.entries()) {
      expect(await ledger({ orderId: o.orderId })).toEqual([
        { kind: "reserve", actor: o.actor },
        { kind: i % 4 < 2 ? "commit" : "release", actor: o.actor },
      ]);
    }
    const batch = { orderId: randomUUID(), lines };
    await serviceA.reserveOrders({ orders: [batch] });
    expect(await ledger({ orderId: batch.orderId })).toEqual([{ kind: "reserve", actor: "orders-a" }]);
  });
});

describe("a budget per caller", () => {
  let limited: Harness;
  beforeAll(async () => {
    limited = await startHarness({ callerBudget: { perCaller: 3, windowMs: 60_000 } });
  });
  afterAll(() => limited.close());

  const clientOf = (token: Promise<string>) => createClient(InventoryService, createGrpcTransport({ baseUrl: limited.server.url, interceptors: [bearer(token)] }));

  it("refuses a caller past its budget as RESOURCE_EXHAUSTED, leaving other callers and the order service alone", async () => {
    const greedy = clientOf(limited.token("script", [INVENTORY_READ]));
    const other = clientOf(limited.token("person", [INVENTORY_READ]));
    const orders = clientOf(limited.token("order-service", [INVENTORY_RESERVE, INVENTORY_READ], { clientId: "order-service" }));
    const list = (c: Client<typeof InventoryService>) => outcomeOf(c.listProducts({}));
    expect([await list(greedy), await list(greedy), await list(greedy)]).toEqual([OK, OK, OK]);
    const refused = await rpcError(greedy.listProducts({}));
    expect(refused).toMatchObject({ code: Code.ResourceExhausted });
    expect(refused.rawMessage).toBe("this caller has used its budget of 3 calls per 60000 ms; slow down and retry later");
    expect(await list(other)).toBe(OK);
    const many = await Promise.all(Array.from({ length: 10 }, () => list(orders)));
    expect(many).toEqual(Array(10).fill(OK));
    // Health is nobody's: it never counts.
    const health = createClient(Health, createGrpcTransport({ baseUrl: limited.server.url }));
    expect(await Promise.all(Array.from({ length: 5 }, () => outcomeOf(health.check({}))))).toEqual(Array(5).fill(OK));
  });
});

describe("reflection made private", () => {
  let closed: Harness;
  beforeAll(async () => {
    closed = await startHarness({ auth: { reflectionPublic: false } });
  });
  afterAll(() => closed.close());

  it("needs a token with inventory:read; Health stays open", async () => {
    const of = (interceptors: Interceptor[]) => callersWith(closed.server.url, interceptors);
    expect(await outcomeOf(listServices(of([]).reflection))).toBe(UNAUTHENTICATED);
    expect(await outcomeOf(listServices(of([bearer(closed.token("svc", [INVENTORY_RESERVE]))]).reflection))).toBe(DENIED);
    expect(await outcomeOf(listServices(of([bearer(closed.token("dev", [INVENTORY_READ]))]).reflection))).toBe(OK);
    expect(await outcomeOf(of([]).health.check({}))).toBe(OK);
  });
});

describe("keys that cannot be had", () => {
  let unreachable: Harness;
  const jwksUrl = "http://127.0.0.1:9/.well-known/jwks.json";
  beforeAll(async () => {
    unreachable = await startHarness({ auth: { jwksUrl, jwksFile: undefined } });
  });
  afterAll(() => unreachable.close());

  it("make calls UNAVAILABLE, not the caller's fault, without saying where the keys live", async () => {
    const error = await rpcError(unreachable.client.listProducts({}));
    expect(error).toMatchObject({ code: Code.Unavailable, rawMessage: "the token signing keys cannot be loaded; retry later" });
    expect(error.rawMessage).not.toContain("127.0.0.1");
    const health = createClient(Health, createGrpcTransport({ baseUrl: unreachable.server.url }));
    expect(await outcomeOf(health.check({}))).toBe(OK);
  });
});
