/**
 * The audiences (`aud`) of the system's APIs: each service accepts only
 * tokens minted for it, so a token for one cannot be replayed at the other.
 */

/** The order service's REST API. */
export const ORDERS_API = "orders-api";
/** The inventory service's gRPC API. */
export const INVENTORY_API = "inventory-api";
