import { sql, type Kysely } from "kysely";

// Frozen: never edit a migration that has run anywhere; add a new one.

// An Idempotency-Key belongs to the caller who sent it (the token's
// subject): two customers who happen to pick the same key string must
// neither block nor see each other's responses. Keys stored before callers
// were authenticated belong to nobody (''), so no caller can replay them.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("idempotency_keys")
    .addColumn("subject", "text", (c) => c.notNull().defaultTo(""))
    .execute();
  await sql`alter table idempotency_keys alter column subject drop default`.execute(db);
  await db.schema.alterTable("idempotency_keys").dropConstraint("idempotency_keys_pkey").execute();
  await db.schema
    .alterTable("idempotency_keys")
    .addPrimaryKeyConstraint("idempotency_keys_pkey", ["subject", "endpoint", "key"])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.deleteFrom("idempotency_keys").where("subject", "<>", "").execute();
  await db.schema.alterTable("idempotency_keys").dropConstraint("idempotency_keys_pkey").execute();
  await db.schema.alterTable("idempotency_keys").addPrimaryKeyConstraint("idempotency_keys_pkey", ["endpoint", "key"]).execute();
  await db.schema.alterTable("idempotency_keys").dropColumn("subject").execute();
}
