import { createRegistry } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { eventRegistry } from "@ecommerce/events/catalogue.ts";
import { file_google_rpc_error_details } from "@ecommerce/gen/google/rpc/error_details_pb.ts";
import { file_inventory_v1_events } from "@ecommerce/gen/inventory/v1/events_pb.ts";
import { file_inventory_v1_inventory, InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { healthRoutes } from "./health/health-service.ts";
import type { HealthState } from "./health/health-state.ts";
import { reflectionRoutes } from "./reflection/reflection.ts";
import { createInventoryService, type InventoryServiceDeps } from "./stock/service.ts";

/** Registers services on a Connect router; the server takes a list of these. */
export type Routes = (router: ConnectRouter) => void;

/**
 * Every message InventoryService answers inside google.protobuf.Any: the
 * error details of ReserveOrders' outcomes and the events' payloads. The
 * JSON codec (Connect and gRPC with JSON) needs them to write an Any;
 * binary clients unpack with their own registry.
 */
const ANY_PAYLOADS = createRegistry(file_inventory_v1_inventory, file_google_rpc_error_details, eventRegistry);

/**
 * Every service the inventory server answers: InventoryService,
 * grpc.health.v1.Health reporting `health`, and server reflection (v1 and
 * v1alpha) describing exactly these services plus the types clients meet
 * only inside an Any: the google.rpc error details that errors carry and
 * the event messages of ListEvents, so that grpcurl and buf curl can
 * print them.
 */
export function inventoryServerRoutes(deps: InventoryServiceDeps & { health: HealthState }): Routes[] {
  return [
    (router) => router.service(InventoryService, createInventoryService(deps), { jsonOptions: { registry: ANY_PAYLOADS } }),
    healthRoutes(deps.health),
    reflectionRoutes({ extraFiles: [file_google_rpc_error_details, file_inventory_v1_events] }),
  ];
}
