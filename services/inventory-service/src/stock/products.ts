import { sql, type Kysely, type Transaction } from "kysely";
import type { Database, MovementKind, ProductRow, StockMovementRow } from "../db/database.ts";
import { inventoryErrors } from "./errors.ts";
import { MAX_ON_HAND } from "./limits.ts";
import { encodePageToken } from "./page-token.ts";
import type { LineInput } from "./reservations.ts";
import { lockStock, moveStock, type Db } from "./stock-levels.ts";

/** A product with its stock level. */
export interface ProductWithStock extends ProductRow {
  on_hand: number;
  reserved: number;
  low_stock_threshold: number;
}

export interface CreateProductInput {
  /** A fixed id (sample data); a new UUID when absent. */
  id?: string;
  sku: string;
  name: string;
  description: string;
  priceMinor: bigint;
  currency: string;
  initialStock: number;
  /** stock.low is recorded when available stock falls below it; 0: never. */
  lowStockThreshold: number;
}

export interface ListProductsInput {
  pageSize: number;
  /** Continue after this SKU; from the start when undefined. */
  afterSku: string | undefined;
}

export interface AdjustStockInput {
  productId: string;
  change: { delta: number } | { setOnHand: number };
  reason: Extract<MovementKind, "restock" | "write_off" | "count_correction">;
  note: string;
  /** Who makes the change: the caller's subject. */
  actor: string;
}

/** Availability of one requested line. */
export interface LineAvailability {
  productId: string;
  requested: number;
  available: number;
}

function selectProducts(db: Db) {
  return db
    .selectFrom("products as p")
    .innerJoin("stock_levels as s", "s.product_id", "p.id")
    .select(["p.id", "p.sku", "p.name", "p.description", "p.price_minor", "p.currency", "p.created_at"])
    // A product changes when its catalogue data or its stock does.
    .select(sql<Date>`greatest(p.updated_at, s.updated_at)`.as("updated_at"))
    .select(["s.on_hand", "s.reserved", "s.low_stock_threshold"]);
}

/** One product with its stock level; NOT_FOUND when unknown. */
export async function getProduct(db: Db, productId: string): Promise<ProductWithStock> {
  const product = await selectProducts(db).where("p.id", "=", productId).executeTakeFirst();
  if (product === undefined) throw inventoryErrors.productNotFound([productId]);
  return product;
}

/** A page of the catalogue in SKU order, and the token of the next page ("" on the last). */
export async function listProducts(
  db: Db,
  input: ListProductsInput,
): Promise<{ products: ProductWithStock[]; nextPageToken: string }> {
  let query = selectProducts(db).orderBy("p.sku").limit(input.pageSize + 1);
  if (input.afterSku !== undefined) query = query.where("p.sku", ">", input.afterSku);
  const rows = await query.execute();
  const products = rows.slice(0, input.pageSize);
  const last = products.at(-1);
  return { products, nextPageToken: rows.length > input.pageSize && last ? encodePageToken(last.sku) : "" };
}

/**
 * Inserts a product with its initial stock and the ledger's `initial` row.
 * Returns undefined, changing nothing, when its id or SKU already exists.
 * A product created below its low-stock threshold records stock.low after
 * its initial stock.adjusted (see migration 0004).
 */
export async function insertProduct(
  tx: Transaction<Database>,
  input: CreateProductInput,
  actor: string,
): Promise<ProductWithStock | undefined> {
  const product = await tx
    .insertInto("products")
    .values({
      ...(input.id === undefined ? {} : { id: input.id }),
      sku: input.sku,
      name: input.name,
      description: input.description,
      price_minor: input.priceMinor,
      currency: input.currency,
    })
    .onConflict((oc) => oc.doNothing())
    .returningAll()
    .executeTakeFirst();
  if (product === undefined) return undefined;
  await tx
    .insertInto("stock_levels")
    .values({ product_id: product.id, on_hand: 0, reserved: 0, low_stock_threshold: input.lowStockThreshold })
    .execute();
  await moveStock(tx, [
    {
      productId: product.id,
      kind: "initial",
      onHandDelta: input.initialStock,
      reservedDelta: 0,
      orderId: null,
      note: "",
      actor,
    },
  ]);
  return { ...product, on_hand: input.initialStock, reserved: 0, low_stock_threshold: input.lowStockThreshold };
}

/** Adds a product to the catalogue, its initial stock recorded as `actor`'s; ALREADY_EXISTS when its SKU is taken. */
export async function createProduct(db: Kysely<Database>, input: CreateProductInput, actor: string): Promise<ProductWithStock> {
  return db.transaction().execute(async (tx) => {
    const product = await insertProduct(tx, input, actor);
    if (product === undefined) throw inventoryErrors.skuTaken(input.sku);
    return product;
  });
}

/**
 * Changes a product's on-hand stock for a reason, under its row lock, and
 * records the change in the ledger. On hand never goes below reserved.
 */
export async function adjustStock(
  db: Kysely<Database>,
  input: AdjustStockInput,
): Promise<{ product: ProductWithStock; movement: StockMovementRow }> {
  return db.transaction().execute(async (tx) => {
    const [stock] = await lockStock(tx, [input.productId]);
    if (stock === undefined) throw inventoryErrors.productNotFound([input.productId]);
    const onHand = "delta" in input.change ? stock.on_hand + input.change.delta : input.change.setOnHand;
    if (onHand > MAX_ON_HAND) throw inventoryErrors.stockLimitExceeded(input.productId, onHand, MAX_ON_HAND);
    if (onHand < stock.reserved) throw inventoryErrors.stockBelowReserved(input.productId, onHand, stock.reserved);
    const [movement] = await moveStock(tx, [
      {
        productId: input.productId,
        kind: input.reason,
        onHandDelta: onHand - stock.on_hand,
        reservedDelta: 0,
        orderId: null,
        note: input.note,
        actor: input.actor,
      },
    ]);
    return { product: await getProduct(tx, input.productId), movement: movement! };
  });
}

/** How many units of each line's product are available now; NOT_FOUND names unknown products. */
export async function checkStock(db: Db, lines: readonly LineInput[]): Promise<LineAvailability[]> {
  const rows = await db
    .selectFrom("stock_levels")
    .select(["product_id", "on_hand", "reserved"])
    .where(
      "product_id",
      "in",
      lines.map((l) => l.productId),
    )
    .execute();
  const available = new Map(rows.map((r) => [r.product_id, r.on_hand - r.reserved]));
  const unknown = lines.filter((l) => !available.has(l.productId)).map((l) => l.productId);
  if (unknown.length > 0) throw inventoryErrors.productNotFound(unknown);
  return lines.map((l) => ({ productId: l.productId, requested: l.quantity, available: available.get(l.productId)! }));
}
