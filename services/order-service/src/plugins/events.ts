import type { EventsConfig } from "@ecommerce/events/config.ts";
import { startRelay, type Relay } from "@ecommerce/events/relay.ts";
import fp from "fastify-plugin";
import pg from "pg";
import { EVENT_SOURCE } from "../orders/events.ts";

declare module "fastify" {
  interface FastifyInstance {
    /** Publishes the outbox to NATS JetStream (NATS_URL), and prunes it. */
    relay: Relay;
  }
}

export interface EventsPluginOptions {
  url: string;
  events: EventsConfig;
}

/**
 * Runs the outbox relay beside the API, on a pool of its own (two
 * connections: claims, and pruning), so that publishing never waits for
 * a connection a request holds nor the other way round. Several replicas
 * each run one; their claims never overlap (see the events package). The
 * relay stops with the app, after the requests in flight, whose events are
 * then in the outbox for the next relay to publish.
 */
export const eventsPlugin = fp<EventsPluginOptions>(
  async (app, { url, events }) => {
    const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5_000, keepAlive: true });
    // As for the request pool (db/connect.ts): a lost connection is replaced, never fatal.
    pool.on("error", (error) => app.log.warn({ err: error }, "the events relay lost an idle connection to the orders database"));
    pool.on("connect", (client) => client.on("error", () => {}));
    const relay = startRelay({ pool, listen: url, source: EVENT_SOURCE, config: events, logger: app.log, streams: ["ORDERS"] });
    app.decorate("relay", relay);
    app.addHook("onClose", async () => {
      await relay.close();
      await pool.end();
    });
  },
  { name: "events" },
);
