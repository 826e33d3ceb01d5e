import { sql, type Kysely } from "kysely";

// Frozen: never edit a migration that has run anywhere; add a new one.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("orders")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().check(sql`char_length(user_id) BETWEEN 1 AND 128`))
    .addColumn("status", "text", (c) =>
      c.notNull().check(sql`status IN ('pending', 'confirmed', 'rejected', 'cancelled', 'fulfilled')`),
    )
    .addColumn("total_minor", "bigint", (c) => c.check(sql`total_minor >= 0`))
    .addColumn("currency", "char(3)")
    .addColumn("rejection_reason", "text")
    .addColumn("stock_synced_at", "timestamptz")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable("order_items")
    .addColumn("order_id", "uuid", (c) => c.notNull().references("orders.id").onDelete("cascade"))
    .addColumn("product_id", "uuid", (c) => c.notNull())
    .addColumn("quantity", "integer", (c) => c.notNull().check(sql`quantity > 0`))
    .addColumn("unit_price_minor", "bigint", (c) => c.check(sql`unit_price_minor >= 0`))
    .addColumn("currency", "char(3)")
    .addPrimaryKeyConstraint("order_items_pkey", ["order_id", "product_id"])
    .execute();

  // Listing filters, newest first (ids are UUIDv7, so id order is time order).
  await db.schema.createIndex("orders_user_id_id_idx").on("orders").columns(["user_id", "id desc"]).execute();
  await db.schema.createIndex("orders_status_id_idx").on("orders").columns(["status", "id desc"]).execute();
  // Pending orders left behind by a crash or an inventory outage, oldest first.
  await db.schema
    .createIndex("orders_pending_created_at_idx")
    .on("orders")
    .column("created_at")
    .where(sql.ref("status"), "=", "pending")
    .execute();
  // Orders that still owe inventory a stock action (see orders/stock-sync.ts).
  await db.schema
    .createIndex("orders_stock_unsynced_idx")
    .on("orders")
    .column("updated_at")
    .where(sql<boolean>`stock_synced_at IS NULL AND status <> 'pending'`)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("order_items").execute();
  await db.schema.dropTable("orders").execute();
}
