import fp from "fastify-plugin";
import type { Kysely } from "kysely";
import { connectDatabase } from "../db/connect.ts";
import type { Database } from "../db/database.ts";

declare module "fastify" {
  interface FastifyInstance {
    db: Kysely<Database>;
  }
}

export interface DbPluginOptions {
  url: string;
  poolSize: number;
}

/** Decorates the app with the orders database pool, closed with the app. */
export const dbPlugin = fp<DbPluginOptions>(
  async (app, { url, poolSize }) => {
    const db = connectDatabase(url, poolSize);
    app.decorate("db", db);
    app.addHook("onClose", () => db.destroy());
  },
  { name: "db" },
);
