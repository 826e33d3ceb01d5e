import type { Kysely } from "kysely";
import type { Database } from "./db/database.ts";
import { insertProduct, type CreateProductInput } from "./stock/products.ts";

/**
 * The sample catalogue. Ids are fixed so documentation and examples can
 * name them. Each low-stock threshold is a fifth of the initial stock, a
 * plausible reorder point that a demo's reservations (or a flash sale of
 * the bench) cross, so that stock.low events show.
 */
export const SAMPLE_PRODUCTS: readonly Required<CreateProductInput>[] = [
  {
    id: "00000000-0000-4000-8000-000000000001",
    sku: "LAPTOP-GAMING",
    name: "Laptop Gaming",
    description: "15.6-inch gaming laptop with a dedicated graphics card",
    priceMinor: 149999n,
    currency: "USD",
    initialStock: 50,
    lowStockThreshold: 10,
  },
  {
    id: "00000000-0000-4000-8000-000000000002",
    sku: "SMARTPHONE",
    name: "Smartphone",
    description: "6.1-inch smartphone with 128 GB of storage",
    priceMinor: 79999n,
    currency: "USD",
    initialStock: 100,
    lowStockThreshold: 20,
  },
  {
    id: "00000000-0000-4000-8000-000000000003",
    sku: "HEADPHONE-BT",
    name: "Headphone Bluetooth",
    description: "Over-ear Bluetooth headphones with noise cancelling",
    priceMinor: 12999n,
    currency: "USD",
    initialStock: 200,
    lowStockThreshold: 40,
  },
  {
    id: "00000000-0000-4000-8000-000000000004",
    sku: "SMART-WATCH",
    name: "Smart Watch",
    description: "Fitness and notification smart watch",
    priceMinor: 24999n,
    currency: "USD",
    initialStock: 75,
    lowStockThreshold: 15,
  },
  {
    id: "00000000-0000-4000-8000-000000000005",
    sku: "WIRELESS-EARBUDS",
    name: "Wireless Earbuds",
    description: "True wireless earbuds with a charging case",
    priceMinor: 9999n,
    currency: "USD",
    initialStock: 150,
    lowStockThreshold: 30,
  },
];

/**
 * Loads the sample products that are not there yet; returns how many it
 * added. Products that exist (by id or SKU) are left exactly as they are,
 * stock included, so seeding twice changes nothing.
 */
export async function seed(db: Kysely<Database>): Promise<number> {
  return db.transaction().execute(async (tx) => {
    let added = 0;
    for (const product of SAMPLE_PRODUCTS) {
      if (await insertProduct(tx, product, "seeder")) added++;
    }
    return added;
  });
}
