import { sql, type Kysely } from "kysely";

// Frozen: a migration describes the schema as it was on the day it shipped.
// Change the schema with a new migration, never by editing this one.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("products")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("sku", "text", (c) => c.notNull().unique())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("price_minor", "bigint", (c) => c.notNull().check(sql`price_minor >= 0`))
    .addColumn("currency", sql`char(3)`, (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable("stock_levels")
    .addColumn("product_id", "uuid", (c) => c.primaryKey().references("products.id").onDelete("cascade"))
    .addColumn("on_hand", "integer", (c) => c.notNull())
    .addColumn("reserved", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint("stock_levels_reserved_within_on_hand", sql`reserved >= 0 AND reserved <= on_hand`)
    .execute();

  await db.schema
    .createTable("reservations")
    .addColumn("order_id", "uuid", (c) => c.primaryKey())
    .addColumn("status", "text", (c) =>
      c.notNull().check(sql`status IN ('reserved', 'confirmed', 'released', 'committed', 'expired')`),
    )
    .addColumn("expires_at", "timestamptz")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // The expiry sweeper only ever looks at live, unconfirmed reservations.
  await db.schema
    .createIndex("reservations_expiring_idx")
    .on("reservations")
    .column("expires_at")
    .where(sql.ref("status"), "=", "reserved")
    .execute();

  await db.schema
    .createTable("reservation_lines")
    .addColumn("order_id", "uuid", (c) => c.notNull().references("reservations.order_id").onDelete("cascade"))
    .addColumn("product_id", "uuid", (c) => c.notNull().references("products.id"))
    .addColumn("quantity", "integer", (c) => c.notNull().check(sql`quantity > 0`))
    .addColumn("unit_price_minor", "bigint", (c) => c.notNull())
    .addColumn("currency", sql`char(3)`, (c) => c.notNull())
    .addPrimaryKeyConstraint("reservation_lines_pk", ["order_id", "product_id"])
    .execute();

  await db.schema
    .createTable("stock_movements")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("product_id", "uuid", (c) => c.notNull().references("products.id").onDelete("cascade"))
    .addColumn("kind", "text", (c) =>
      c
        .notNull()
        .check(
          sql`kind IN ('initial', 'restock', 'write_off', 'count_correction', 'reserve', 'release', 'commit', 'expire')`,
        ),
    )
    .addColumn("on_hand_delta", "integer", (c) => c.notNull())
    .addColumn("reserved_delta", "integer", (c) => c.notNull())
    .addColumn("order_id", "uuid")
    .addColumn("note", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("actor", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex("stock_movements_product_idx").on("stock_movements").columns(["product_id", "id"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ["stock_movements", "reservation_lines", "reservations", "stock_levels", "products"]) {
    await db.schema.dropTable(table).execute();
  }
}
