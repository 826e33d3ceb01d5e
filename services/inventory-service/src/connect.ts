import type { ConnectRouter } from "@connectrpc/connect";
import { file_google_rpc_error_details } from "@ecommerce/gen/google/rpc/error_details_pb.ts";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { healthRoutes } from "./health/health-service.ts";
import type { HealthState } from "./health/health-state.ts";
import { reflectionRoutes } from "./reflection/reflection.ts";
import { createInventoryService, type InventoryServiceDeps } from "./stock/service.ts";

/** Registers services on a Connect router; the server takes a list of these. */
export type Routes = (router: ConnectRouter) => void;

/**
 * Every service the inventory server answers: InventoryService,
 * grpc.health.v1.Health reporting `health`, and server reflection (v1 and
 * v1alpha) describing exactly these services plus the google.rpc error
 * details that errors carry, so that grpcurl can print them.
 */
export function inventoryServerRoutes(deps: InventoryServiceDeps & { health: HealthState }): Routes[] {
  return [
    (router) => router.service(InventoryService, createInventoryService(deps)),
    healthRoutes(deps.health),
    reflectionRoutes({ extraFiles: [file_google_rpc_error_details] }),
  ];
}
