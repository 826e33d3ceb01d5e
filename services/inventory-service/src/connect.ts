import type { ConnectRouter } from "@connectrpc/connect";
import { InventoryService } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import type { Logger } from "pino";
import { errorInterceptor } from "./stock/errors.ts";
import { createInventoryService, type InventoryServiceDeps } from "./stock/service.ts";

/** Registers services on a Connect router; the server takes a list of these. */
export type Routes = (router: ConnectRouter) => void;

/** The InventoryService routes, built from their dependencies. */
export function inventoryRoutes(deps: InventoryServiceDeps & { logger: Logger }): Routes {
  return (router) =>
    router.service(InventoryService, createInventoryService(deps), { interceptors: [errorInterceptor(deps.logger)] });
}
