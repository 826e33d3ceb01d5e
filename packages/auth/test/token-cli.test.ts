import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { INVENTORY_API } from "../src/audiences.ts";
import { DEV_ISSUER_URL, jwksFilePath } from "../src/dev-issuer.ts";
import { INVENTORY_ADMIN } from "../src/scopes.ts";
import { createTokenVerifier } from "../src/verifier.ts";
import { issuerDir } from "./fixture.ts";

const cli = path.resolve(import.meta.dirname, "../../../tools/token.ts");
const dir = issuerDir();

describe("token CLI", () => {
  it("prints a token that verifies against the development keys", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [cli, "--dir", dir.path, "--sub", "ops", "--scopes", INVENTORY_ADMIN, "--aud", INVENTORY_API, "--ttl", "120"]);
    const verifier = createTokenVerifier({ issuer: DEV_ISSUER_URL, audience: INVENTORY_API, jwksFile: jwksFilePath(dir.path) });
    const principal = await verifier.verify(stdout.trim());
    expect(principal.subject).toBe("ops");
    expect([...principal.scopes]).toEqual([INVENTORY_ADMIN]);
    expect(principal.expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(120_000);
  });

  it("refuses to run without a subject", async () => {
    const run = promisify(execFile)(process.execPath, [cli, "--dir", dir.path]);
    await expect(run).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("--sub is required") });
  });
});
