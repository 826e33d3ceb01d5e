import type { Kysely } from "kysely";

// Frozen: never edit a migration that has run anywhere; add a new one.

// GET /orders lists newest first by (created_at, id) and filters by user,
// status and creation time. Each index yields rows in that order (read
// backwards) for its filter, so a page reads about `limit` rows at any depth:
// no filter or a time window alone, a user (with or without status and time
// window: a user's orders are few), a status (with or without time window).
// They replace the (user_id, id) and (status, id) indexes of the id order.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex("orders_created_at_id_idx").on("orders").columns(["created_at", "id"]).execute();
  await db.schema
    .createIndex("orders_user_id_created_at_id_idx")
    .on("orders")
    .columns(["user_id", "created_at", "id"])
    .execute();
  await db.schema
    .createIndex("orders_status_created_at_id_idx")
    .on("orders")
    .columns(["status", "created_at", "id"])
    .execute();
  await db.schema.dropIndex("orders_user_id_id_idx").execute();
  await db.schema.dropIndex("orders_status_id_idx").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex("orders_user_id_id_idx").on("orders").columns(["user_id", "id desc"]).execute();
  await db.schema.createIndex("orders_status_id_idx").on("orders").columns(["status", "id desc"]).execute();
  await db.schema.dropIndex("orders_status_created_at_id_idx").execute();
  await db.schema.dropIndex("orders_user_id_created_at_id_idx").execute();
  await db.schema.dropIndex("orders_created_at_id_idx").execute();
}
