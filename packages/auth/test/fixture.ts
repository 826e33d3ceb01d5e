import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { importJWK, SignJWT, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll } from "vitest";
import { INVENTORY_API, ORDERS_API } from "../src/audiences.ts";
import { startDevIssuer, type DevClient, type DevIssuer } from "../src/dev-issuer.ts";
import { INVENTORY_RESERVE } from "../src/scopes.ts";

export const ORDER_SERVICE_CLIENT: DevClient = {
  clientId: "order-service",
  clientSecret: "order-service-secret",
  scopes: [INVENTORY_RESERVE],
  audiences: [INVENTORY_API],
};

/** A fresh issuer folder per test file; removed afterwards. */
export function issuerDir(): { path: string } {
  const dir = { path: "" };
  beforeAll(async () => {
    dir.path = await mkdtemp(path.join(tmpdir(), "auth-issuer-"));
  });
  afterAll(async () => {
    await rm(dir.path, { recursive: true, force: true });
  });
  return dir;
}

/** A dev issuer on a free port over a fresh folder, for the duration of a test file. */
export function runningIssuer(options: { tokenTtlSeconds?: number } = {}): { dir: string; issuer: DevIssuer } {
  const dir = issuerDir();
  const running = { dir: "", issuer: undefined as unknown as DevIssuer };
  beforeAll(async () => {
    running.dir = dir.path;
    running.issuer = await startDevIssuer({
      dir: dir.path,
      port: 0,
      clients: [ORDER_SERVICE_CLIENT, { clientId: "staff-portal", clientSecret: "s3cret", scopes: [], audiences: [ORDERS_API] }],
      ...options,
    });
  });
  afterAll(async () => {
    await running.issuer?.close();
  });
  return running;
}

/** Signs arbitrary claims with the folder's current private key, for tokens mintToken would never make. */
export async function signWithCurrentKey(dir: string, claims: JWTPayload): Promise<string> {
  const { keys } = JSON.parse(await readFile(path.join(dir, "signing-keys.json"), "utf8")) as { keys: JWK[] };
  const key = keys[0]!;
  return new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: key.kid! }).sign(await importJWK(key, "ES256"));
}

/** A loopback port nothing listens on: connecting to it is refused. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
