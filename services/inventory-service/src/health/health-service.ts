import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Health, HealthCheckResponseSchema } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";
import { quoted } from "../stock/errors.ts";
import type { HealthState, ServingStatus } from "./health-state.ts";

/**
 * Registers `grpc.health.v1.Health` (Check, Watch and List) answering from
 * `state`, as Kubernetes gRPC probes, grpc_health_probe and load balancers
 * expect: Check of an unknown service is NOT_FOUND; Watch of one reports
 * SERVICE_UNKNOWN and keeps watching.
 */
export function healthRoutes(state: HealthState): (router: ConnectRouter) => void {
  const response = (status: ServingStatus) => create(HealthCheckResponseSchema, { status });
  return (router) => {
    router.service(Health, {
      check({ service }) {
        const status = state.get(service);
        if (status === undefined) throw new ConnectError(`unknown service ${quoted(service)}`, Code.NotFound);
        return response(status);
      },
      async *watch({ service }, context) {
        for await (const status of state.watch(service, context.signal)) yield response(status);
      },
      list() {
        return { statuses: Object.fromEntries([...state.list()].map(([service, status]) => [service, response(status)])) };
      },
    });
  };
}
