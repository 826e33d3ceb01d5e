// Container health check: exits 0 only when the inventory service on this
// host (port SERVER_PORT) answers grpc.health.v1.Health/Check with SERVING,
// and prints the status it got. compose.yaml runs it as
// `node scripts/healthcheck.ts`; a service name as argument checks that
// one instead of the whole server, such as `liveness`.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponse_ServingStatusSchema,
} from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import { loadConfig } from "../src/config.ts";

/** Below the 3 s timeout of the compose health check, so that a slow answer is reported here. */
const TIMEOUT_MS = 2000;

try {
  const { serverPort } = loadConfig();
  const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${serverPort}` }));
  const { status } = await health.check({ service: process.argv[2] ?? "" }, { timeoutMs: TIMEOUT_MS });
  process.stdout.write(`${HealthCheckResponse_ServingStatusSchema.value[status]?.name ?? status}\n`);
  process.exit(status === HealthCheckResponse_ServingStatus.SERVING ? 0 : 1);
} catch (e) {
  process.stderr.write(`health check failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
