import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { freePort, startEmbeddedPostgres, type PostgresServer } from "@ecommerce/tools/postgres.ts";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { watchDatabase } from "../src/health/database-watch.ts";
import { healthRoutes } from "../src/health/health-service.ts";
import { createHealthState, ServingStatus, type HealthState } from "../src/health/health-state.ts";
import { startTestServer, stubInventoryRoutes, type TestServer } from "./grpc-test-server.ts";

const { SERVING, NOT_SERVING, SERVICE_UNKNOWN } = ServingStatus;
const inventory = InventoryService.typeName;

/** Starts a server answering Health from `state`, and a client of it. */
async function serveHealth(state: HealthState): Promise<{ server: TestServer; health: Client<typeof Health> }> {
  const server = await startTestServer(stubInventoryRoutes, healthRoutes(state));
  return { server, health: createClient(Health, createGrpcTransport({ baseUrl: server.url })) };
}

/** Reads a Watch stream in the background, keeping every status it delivers. */
function watchInBackground(health: Client<typeof Health>, service: string, signal?: AbortSignal) {
  const statuses: ServingStatus[] = [];
  const done = (async () => {
    for await (const { status } of health.watch({ service }, { signal })) statuses.push(status as ServingStatus);
  })();
  return { statuses, done };
}

describe("health of a server whose database goes away and comes back", () => {
  let dir: string;
  let port: number;
  let postgres: PostgresServer | undefined;
  let pool: pg.Pool;
  let state: HealthState;
  let stopWatching: () => void;
  let server: TestServer;
  let health: Client<typeof Health>;

  const startPostgres = async () => {
    postgres = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), port, persistent: true });
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "inventory-health-"));
    // The server may run as another user (see startEmbeddedPostgres).
    await chmod(dir, 0o755);
    port = await freePort();
    await startPostgres();
    pool = new pg.Pool({ connectionString: postgres!.url("postgres"), max: 1, connectionTimeoutMillis: 1_000 });
    // Idle connections die with the server; the pool opens new ones.
    pool.on("error", () => {});

    state = createHealthState({ "": NOT_SERVING, [inventory]: NOT_SERVING, liveness: SERVING });
    stopWatching = watchDatabase(state, {
      check: async () => void (await pool.query("SELECT 1")),
      services: ["", inventory],
      intervalMs: 100,
      timeoutMs: 1_000,
    });
    ({ server, health } = await serveHealth(state));
  });

  afterAll(async () => {
    stopWatching?.();
    await server?.close();
    await pool?.end();
    await postgres?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("reports NOT_SERVING while the database is down and SERVING again once it is back, to Check and Watch", async () => {
    await vi.waitFor(async () => expect((await health.check({ service: "" })).status).toBe(SERVING));
    const watch = watchInBackground(health, "");

    await postgres!.stop();
    postgres = undefined;
    await vi.waitFor(async () => expect((await health.check({ service: "" })).status).toBe(NOT_SERVING), { timeout: 5_000 });
    expect((await health.check({ service: inventory })).status).toBe(NOT_SERVING);
    // The process itself is fine: liveness does not follow the database.
    expect((await health.check({ service: "liveness" })).status).toBe(SERVING);

    await startPostgres();
    await vi.waitFor(async () => expect((await health.check({ service: "" })).status).toBe(SERVING), { timeout: 5_000 });
    await vi.waitFor(() => expect(watch.statuses).toEqual([SERVING, NOT_SERVING, SERVING]));

    // Shutting down: everything NOT_SERVING, and the watch ends cleanly.
    state.shutdown();
    await watch.done;
    expect(watch.statuses).toEqual([SERVING, NOT_SERVING, SERVING, NOT_SERVING]);
    const { statuses } = await health.list({});
    expect(Object.fromEntries(Object.entries(statuses).map(([name, r]) => [name, r.status]))).toEqual({
      "": NOT_SERVING,
      [inventory]: NOT_SERVING,
      liveness: NOT_SERVING,
    });
    // A recovered database does not bring a server that is shutting down back.
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect((await health.check({ service: "" })).status).toBe(NOT_SERVING);
  });
});

describe("grpc.health.v1.Health", () => {
  let state: HealthState;
  let server: TestServer;
  let health: Client<typeof Health>;

  beforeAll(async () => {
    state = createHealthState();
    ({ server, health } = await serveHealth(state));
  });

  afterAll(() => server?.close());

  it("answers Check for the whole server and NOT_FOUND for an unknown service", async () => {
    expect((await health.check({})).status).toBe(SERVING);
    const error = await health.check({ service: "inventory.v1.Nope" }).catch((e: unknown) => ConnectError.from(e));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    expect((error as ConnectError).rawMessage).toBe('unknown service "inventory.v1.Nope"');
  });

  it("watches an unknown service as SERVICE_UNKNOWN until it becomes known", async () => {
    const abort = new AbortController();
    const watch = watchInBackground(health, "reports.v1.ReportService", abort.signal);
    await vi.waitFor(() => expect(watch.statuses).toEqual([SERVICE_UNKNOWN]));

    state.setStatus("reports.v1.ReportService", SERVING);
    await vi.waitFor(() => expect(watch.statuses).toEqual([SERVICE_UNKNOWN, SERVING]));
    // Setting the same status again is no change and sends nothing.
    state.setStatus("reports.v1.ReportService", SERVING);
    state.setStatus("reports.v1.ReportService", NOT_SERVING);
    await vi.waitFor(() => expect(watch.statuses).toEqual([SERVICE_UNKNOWN, SERVING, NOT_SERVING]));

    abort.abort();
    const error = await watch.done.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.Canceled);
  });

  it("lists every known service with its status", async () => {
    state.setStatus(inventory, NOT_SERVING);
    const { statuses } = await health.list({});
    expect(statuses[""]?.status).toBe(SERVING);
    expect(statuses[inventory]?.status).toBe(NOT_SERVING);
  });
});

describe("HealthState.watch", () => {
  it("stops when its caller goes away, without waiting for a change", async () => {
    const state = createHealthState();
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    const done = (async () => {
      for await (const status of state.watch("", abort.signal)) seen.push(status);
    })();
    await vi.waitFor(() => expect(seen).toEqual([SERVING]));
    abort.abort();
    await done;
    state.setStatus("", NOT_SERVING);
    expect(seen).toEqual([SERVING]);
  });

  it("delivers the latest status to a watcher that fell behind", async () => {
    const state = createHealthState();
    const watch = state.watch("", new AbortController().signal)[Symbol.asyncIterator]();
    expect((await watch.next()).value).toBe(SERVING);
    state.setStatus("", NOT_SERVING);
    state.setStatus("", SERVING);
    state.setStatus("", NOT_SERVING);
    expect((await watch.next()).value).toBe(NOT_SERVING);
    state.shutdown();
    expect((await watch.next()).done).toBe(true);
  });
});
