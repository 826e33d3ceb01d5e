import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";

export type { NatsConnection };

/** Options of {@link connectNats}. */
export interface NatsConnectOptions {
  /** NATS_URL: one server, or several separated by commas (nats://a:4222,nats://b:4222). */
  url: string;
  /** The client's name, shown by the server's monitoring (connz) and in its logs. */
  name: string;
  /**
   * Keep trying when no server answers at first (default true): a broker that is
   * down when the service starts is waited for, not fatal. False fails fast, for a
   * command-line tool that should say there is no broker.
   */
  waitOnFirstConnect?: boolean;
  /** Milliseconds a connection attempt (and a request) may take; default 5000. */
  timeoutMs?: number;
  /** Milliseconds between reconnect attempts; default 1000. */
  reconnectWaitMs?: number;
  /** Aborting gives up a first connection still being waited for (the promise rejects). */
  signal?: AbortSignal;
}

/** The servers of a NATS_URL, which may list several separated by commas. */
export function natsServers(url: string): string[] {
  return url
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Connects to NATS, reconnecting forever once connected: a broker restart or a
 * network cut is ridden out, and the JetStream calls made meanwhile fail with
 * a timeout the callers retry. With waitOnFirstConnect (the default) a broker
 * that is not there yet is retried too, until `signal` aborts.
 */
export async function connectNats(options: NatsConnectOptions): Promise<NatsConnection> {
  const { signal } = options;
  signal?.throwIfAborted();
  return connect({
    servers: natsServers(options.url),
    name: options.name,
    maxReconnectAttempts: -1,
    waitOnFirstConnect: options.waitOnFirstConnect ?? true,
    reconnectTimeWait: options.reconnectWaitMs ?? 1000,
    reconnectJitter: 200,
    timeout: options.timeoutMs ?? 5000,
    // Called before every connection attempt; throwing rejects a first connect still
    // being waited for, which is the only way to give it up (there is no connection
    // object to close yet).
    reconnectToServer: () => {
      if (signal?.aborted) throw new Error("connection to NATS abandoned");
      return null;
    },
  });
}

/** A JetStream client on `nc`; `timeoutMs` bounds its API calls and publish acknowledgements. */
export function jetStreamOf(nc: NatsConnection, timeoutMs?: number): JetStreamClient {
  return jetstream(nc, timeoutMs === undefined ? {} : { timeout: timeoutMs });
}

/**
 * A JetStream manager on `nc` (streams and consumers). It does not ask the
 * server whether JetStream is enabled first: the first real call says so.
 */
export function jetStreamManagerOf(nc: NatsConnection, timeoutMs?: number): Promise<JetStreamManager> {
  return jetstreamManager(nc, { checkAPI: false, ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }) });
}
