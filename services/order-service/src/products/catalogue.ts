import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Product as ProductMessage } from "@ecommerce/gen/inventory/v1/inventory_pb.ts";
import { invalidCursor, inventoryUnavailable, productNotFound } from "../errors.ts";
import { classifyInventoryError, type InventoryClient } from "../plugins/inventory.ts";

/** A product of the catalogue with its availability, as the API shows it. */
export interface Product {
  id: string;
  sku: string;
  name: string;
  description: string;
  price_minor: number;
  currency: string;
  stock: { on_hand: number; reserved: number; available: number };
  created_at: string | null;
  updated_at: string | null;
}

/** A page of products and the cursor of the next page (null on the last one). */
export interface ProductPage {
  data: Product[];
  next_cursor: string | null;
}

/** One product from inventory, or product_not_found. */
export async function getProduct(inventory: InventoryClient, id: string): Promise<Product> {
  try {
    const { product } = await inventory.getProduct({ productId: id.toLowerCase() });
    if (!product) throw new Error(`inventory returned no product for ${id}`);
    return toProduct(product);
  } catch (error) {
    throw catalogueError(error, () => productNotFound(id));
  }
}

/** A page of the catalogue; the cursor is inventory's page token, passed through unchanged. */
export async function listProducts(
  inventory: InventoryClient,
  query: { limit: number; cursor?: string },
): Promise<ProductPage> {
  try {
    const page = await inventory.listProducts({ pageSize: query.limit, pageToken: query.cursor ?? "" });
    return { data: page.products.map(toProduct), next_cursor: page.nextPageToken || null };
  } catch (error) {
    throw catalogueError(error, invalidCursor);
  }
}

function catalogueError(error: unknown, onClientMistake: () => Error): unknown {
  const failure = classifyInventoryError(error);
  switch (failure.kind) {
    case "not_found":
    case "invalid_argument":
      return onClientMistake();
    case "unavailable":
      return inventoryUnavailable();
    default:
      return error;
  }
}

function toProduct(p: ProductMessage): Product {
  return {
    id: p.id,
    sku: p.sku,
    name: p.name,
    description: p.description,
    price_minor: Number(p.priceMinor),
    currency: p.currency,
    stock: {
      on_hand: p.stock?.onHand ?? 0,
      reserved: p.stock?.reserved ?? 0,
      available: p.stock?.available ?? 0,
    },
    created_at: iso(p.createTime),
    updated_at: iso(p.updateTime),
  };
}

function iso(t: Timestamp | undefined): string | null {
  return t ? timestampDate(t).toISOString() : null;
}
