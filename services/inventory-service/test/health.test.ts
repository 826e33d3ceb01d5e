import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { ensureDatabase, freePort, startEmbeddedPostgres, type PostgresServer } from "@ecommerce/tools/postgres.ts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { healthRoutes } from "../src/health/health-service.ts";
import { createHealthState, ServingStatus, type HealthState } from "../src/health/health-state.ts";
import { startInventoryServer, type InventoryServer } from "../src/server.ts";

const { SERVING, NOT_SERVING, SERVICE_UNKNOWN } = ServingStatus;
const inventory = InventoryService.typeName;

/** Reads a Watch stream in the background, keeping every status it delivers. */
function watchInBackground(health: Client<typeof Health>, service: string, signal?: AbortSignal) {
  const statuses: ServingStatus[] = [];
  const done = (async () => {
    for await (const { status } of health.watch({ service }, { signal })) statuses.push(status as ServingStatus);
  })();
  return { statuses, done };
}

const execFileAsync = promisify(execFile);

/**
 * Runs scripts/healthcheck.ts the way compose.yaml does (from the service
 * folder, SERVER_PORT in the environment) and returns its exit code and
 * what it printed.
 */
async function runHealthcheck(port: number, ...args: string[]): Promise<{ code: number; output: string }> {
  const options = { cwd: path.resolve(import.meta.dirname, ".."), env: { ...process.env, SERVER_PORT: String(port) } };
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, ["scripts/healthcheck.ts", ...args], options);
    return { code: 0, output: stdout + stderr };
  } catch (e) {
    const failure = e as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? -1, output: (failure.stdout ?? "") + (failure.stderr ?? "") };
  }
}

describe("health of the inventory server, whose database goes away and comes back", () => {
  let dir: string;
  let pgPort: number;
  let postgres: PostgresServer | undefined;
  let server: InventoryServer;
  let health: Client<typeof Health>;

  const startPostgres = async () => {
    postgres = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), port: pgPort, persistent: true });
  };
  const statusOf = async (service: string) => (await health.check({ service })).status;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "inventory-health-"));
    // The server may run as another user (see startEmbeddedPostgres).
    await chmod(dir, 0o755);
    pgPort = await freePort();
    await startPostgres();
    const databaseUrl = postgres!.url("inventory");
    await ensureDatabase(databaseUrl);
    // Silent: the expiry sweeper complains while the database is away.
    server = await startInventoryServer({ databaseUrl, healthCheckIntervalMs: 100, limits: { shutdownTimeoutMs: 10_000 }, logLevel: "silent" });
    health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
  });

  afterAll(async () => {
    await server?.close();
    await postgres?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves the whole server, InventoryService and liveness, and the container health check agrees", async () => {
    await vi.waitFor(async () => expect(await statusOf("")).toBe(SERVING));
    expect(await statusOf(inventory)).toBe(SERVING);
    expect(await statusOf("liveness")).toBe(SERVING);
    expect(await runHealthcheck(server.port)).toEqual({ code: 0, output: "SERVING\n" });
  });

  it("reports NOT_SERVING while the database is down and SERVING again once it is back, to Check, Watch and the health check", async () => {
    const watch = watchInBackground(health, "");
    await vi.waitFor(() => expect(watch.statuses).toEqual([SERVING]));

    await postgres!.stop();
    postgres = undefined;
    await vi.waitFor(async () => expect(await statusOf("")).toBe(NOT_SERVING), { timeout: 5_000 });
    expect(await statusOf(inventory)).toBe(NOT_SERVING);
    // The process itself is fine: liveness does not follow the database.
    expect(await statusOf("liveness")).toBe(SERVING);
    expect(await runHealthcheck(server.port)).toEqual({ code: 1, output: "NOT_SERVING\n" });
    expect(await runHealthcheck(server.port, "liveness")).toEqual({ code: 0, output: "SERVING\n" });

    await startPostgres();
    await vi.waitFor(async () => expect(await statusOf("")).toBe(SERVING), { timeout: 5_000 });
    await vi.waitFor(() => expect(watch.statuses).toEqual([SERVING, NOT_SERVING, SERVING]));
  });

  it("on close, turns NOT_SERVING and ends Watch streams before it stops, without waiting for them to time out", async () => {
    const watch = watchInBackground(health, inventory);
    await vi.waitFor(() => expect(watch.statuses).toEqual([SERVING]));

    const started = performance.now();
    await server.close();
    // The Watch ended cleanly rather than being cut off after shutdownTimeoutMs.
    expect(performance.now() - started).toBeLessThan(2_000);
    await watch.done;
    expect(watch.statuses).toEqual([SERVING, NOT_SERVING]);

    const after = await runHealthcheck(server.port);
    expect(after.code).toBe(1);
    expect(after.output).toMatch(/^health check failed: /);
  });
});

describe("grpc.health.v1.Health", () => {
  let state: HealthState;
  let health: Client<typeof Health>;

  beforeAll(() => {
    state = createHealthState();
    health = createClient(Health, createRouterTransport(healthRoutes(state)));
  });

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

  it("keeps every service NOT_SERVING after shutdown, whatever is reported later", async () => {
    state.shutdown();
    state.setStatus("", SERVING);
    const { statuses } = await health.list({});
    expect(Object.values(statuses).map((r) => r.status)).toEqual(Object.values(statuses).map(() => NOT_SERVING));
    expect((await health.check({})).status).toBe(NOT_SERVING);
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
