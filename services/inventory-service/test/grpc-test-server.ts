import { execFile } from "node:child_process";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { CheckStockResponseSchema, InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { repoRoot } from "@ecommerce/tools/postgres.ts";

/** A Connect server on HTTP/2 without TLS (h2c) on a free loopback port. */
export interface TestServer {
  /** Base URL, such as http://127.0.0.1:41234. */
  readonly url: string;
  /** host:port, as grpcio and grpcurl take it. */
  readonly target: string;
  close(): Promise<void>;
}

/** Units on hand per product id in {@link stubInventoryRoutes}. */
export const stubStock: Readonly<Record<string, number>> = { "laptop-gaming": 3, smartphone: 12 };

/**
 * InventoryService answering CheckStock from {@link stubStock}, standing in
 * for the real service: enough to call it through reflection.
 */
export function stubInventoryRoutes(router: ConnectRouter): void {
  router.service(InventoryService, {
    checkStock({ lines }) {
      const answers = lines.map(({ productId, quantity }) => {
        const available = stubStock[productId] ?? 0;
        return { productId, requested: quantity, available, isAvailable: available >= quantity };
      });
      return create(CheckStockResponseSchema, { lines: answers, allAvailable: answers.every((a) => a.isAvailable) });
    },
  });
}

/** Starts a server with the given routes on port 0. */
export async function startTestServer(...routes: ((router: ConnectRouter) => void)[]): Promise<TestServer> {
  const server = http2.createServer(connectNodeAdapter({ routes: (router) => routes.forEach((r) => r(router)) }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    target: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        // Clients keep their connections open; a test server does not wait for them.
        for (const session of sessions) session.destroy();
      }),
  };
}

const execFileAsync = promisify(execFile);

/**
 * Runs the `buf` CLI of the workspace with `args` and returns what it
 * printed. Asynchronous on purpose: the server answering it runs in this
 * same process.
 */
export async function buf(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await execFileAsync(path.join(repoRoot, "node_modules/.bin/buf"), args, { timeout: 30_000 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const failure = e as { stdout?: string; stderr?: string; code?: number };
    return { stdout: failure.stdout ?? "", stderr: failure.stderr ?? "", code: failure.code ?? -1 };
  }
}
