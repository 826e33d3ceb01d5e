import { sql, type Kysely } from "kysely";

// Frozen: never edit a migration that has run anywhere; add a new one.

export async function up(db: Kysely<any>): Promise<void> {
  // Background work on an order (re-driving a pending order, paying its
  // stock debt) is claimed by pushing next_attempt_at forward, so replicas
  // never work on the same order at once and failures back off.
  await db.schema
    .alterTable("orders")
    .addColumn("next_attempt_at", "timestamptz")
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .execute();

  await db.schema
    .createTable("idempotency_keys")
    .addColumn("endpoint", "text", (c) => c.notNull())
    .addColumn("key", "text", (c) => c.notNull().check(sql`char_length(key) BETWEEN 1 AND 255`))
    .addColumn("request_hash", "text", (c) => c.notNull())
    .addColumn("order_id", "uuid", (c) => c.notNull())
    .addColumn("locked_until", "timestamptz")
    .addColumn("response_status", "integer")
    .addColumn("response_body", "jsonb")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("idempotency_keys_pkey", ["endpoint", "key"])
    .addCheckConstraint(
      "idempotency_keys_response_complete",
      sql`(response_status IS NULL) = (response_body IS NULL)`,
    )
    .execute();
  // Keys still waiting for their response, found by order when the order is settled.
  await db.schema
    .createIndex("idempotency_keys_open_order_idx")
    .on("idempotency_keys")
    .column("order_id")
    .where(sql.ref("response_status"), "is", null)
    .execute();
  // Pruning, oldest first.
  await db.schema.createIndex("idempotency_keys_created_at_idx").on("idempotency_keys").column("created_at").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("idempotency_keys").execute();
  await db.schema.alterTable("orders").dropColumn("next_attempt_at").dropColumn("attempts").execute();
}
