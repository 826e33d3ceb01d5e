/**
 * `make token`: prints an access token signed by the development issuer's
 * key (the one `make dev` serves), for curl and for trying scopes:
 *
 *   node tools/token.ts --sub alice [--scopes "orders:read_all orders:fulfil"]
 *                       [--aud orders-api] [--ttl 3600] [--iss URL] [--dir DIR]
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { ORDERS_API } from "@ecommerce/auth/audiences.ts";
import { DEV_ISSUER_URL, mintToken } from "@ecommerce/auth/dev-issuer.ts";
import { repoRoot } from "./postgres.ts";

/** Where development keeps its issuer's keys: `make dev`'s issuer and this CLI share them. */
export const DEV_ISSUER_DIR = path.join(repoRoot, ".data", "issuer");

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sub: { type: "string" },
      scopes: { type: "string", default: "" },
      aud: { type: "string", default: ORDERS_API },
      ttl: { type: "string", default: "3600" },
      iss: { type: "string", default: DEV_ISSUER_URL },
      dir: { type: "string", default: DEV_ISSUER_DIR },
    },
  });
  const ttlSeconds = Number(values.ttl);
  if (!values.sub) throw new Error("--sub is required: the token's subject (a customer id, or a staff member's)");
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new Error(`--ttl must be a positive number of seconds, not ${values.ttl}`);
  const token = await mintToken({
    dir: values.dir,
    issuer: values.iss,
    subject: values.sub,
    scopes: values.scopes.split(" ").filter((s) => s !== ""),
    audience: values.aud,
    ttlSeconds,
  });
  console.log(token);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(`token: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  });
}
