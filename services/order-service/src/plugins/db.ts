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

/**
 * Decorates the app with the orders database pool, closed with the app. A
 * connection lost while idle (the database restarted) is only worth a
 * warning: the pool replaces it, and requests meanwhile get 503.
 */
export const dbPlugin = fp<DbPluginOptions>(
  async (app, { url, poolSize }) => {
    const db = connectDatabase(url, poolSize, (error) =>
      app.log.warn({ err: error }, "lost an idle connection to the orders database"),
    );
    app.decorate("db", db);
    app.addHook("onClose", () => db.destroy());
  },
  { name: "db" },
);
