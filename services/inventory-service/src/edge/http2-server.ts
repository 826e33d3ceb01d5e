import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { Limits } from "../config.ts";
import type { RequestHandler } from "./request-handler.ts";

/** A plaintext HTTP/2 server answering gRPC, gRPC-Web and Connect, with graceful shutdown. */
export interface GrpcServer {
  server: http2.Http2Server;
  /** Starts listening; resolves with the port (useful with port 0). */
  listen(port: number, host?: string): Promise<number>;
  /**
   * Stops accepting connections, lets calls in flight finish (each
   * connection gets a GOAWAY) and destroys whatever is left after
   * `timeoutMs`: streams still open, half-sent requests, their connections.
   */
  close(timeoutMs: number): Promise<void>;
}

/** The bounds the HTTP/2 server enforces itself. */
export type ConnectionLimits = Pick<
  Limits,
  | "maxConcurrentStreams"
  | "maxSessionMemoryMb"
  | "maxConnections"
  | "maxHeaderListBytes"
  | "maxSendHeaderBytes"
  | "idleTimeoutMs"
  | "keepAliveIntervalMs"
  | "keepAliveTimeoutMs"
>;

/**
 * Builds the HTTP/2 (h2c) server around `handler`, bounded by `limits`:
 * streams per connection (nghttp2 refuses the ones over the bound with
 * REFUSED_STREAM; Node.js closes a connection that keeps opening them),
 * buffered memory per connection, connections, header sizes; a connection
 * with no open stream for `idleTimeoutMs` is closed, and one that does not
 * answer a keep-alive ping in time is destroyed, so that neither idle
 * clients nor vanished ones hold sockets and memory.
 */
export function createGrpcServer(handler: RequestHandler, limits: ConnectionLimits): GrpcServer {
  const server = http2.createServer(
    {
      settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderListBytes },
      maxSessionMemory: limits.maxSessionMemoryMb,
      maxSendHeaderBlockLength: limits.maxSendHeaderBytes,
    },
    handler,
  );
  server.maxConnections = limits.maxConnections;
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    const stopWatching = watchSession(session, limits);
    session.once("close", () => {
      sessions.delete(session);
      stopWatching();
    });
  });

  return {
    server,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    close: (timeoutMs) =>
      new Promise((resolve) => {
        if (!server.listening) return resolve();
        const deadline = setTimeout(() => sessions.forEach((s) => s.destroy()), timeoutMs);
        server.close(() => {
          clearTimeout(deadline);
          resolve();
        });
        sessions.forEach((s) => s.close());
      }),
  };
}

/**
 * Closes `session` once it has had no open stream for `idleTimeoutMs`,
 * and pings it every `keepAliveIntervalMs`, destroying it when an answer
 * takes longer than `keepAliveTimeoutMs`. Returns a function that stops
 * both.
 */
function watchSession(session: http2.ServerHttp2Session, limits: ConnectionLimits): () => void {
  let open = 0;
  let idle: NodeJS.Timeout | undefined;
  let unanswered: NodeJS.Timeout | undefined;
  // A peer that ignores the GOAWAY is given until a ping would have timed out.
  const closeIdle = () => {
    session.close();
    setTimeout(() => session.destroy(), limits.keepAliveTimeoutMs).unref();
  };
  const armIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(closeIdle, limits.idleTimeoutMs).unref();
  };
  armIdle();
  session.on("stream", (stream) => {
    open++;
    clearTimeout(idle);
    stream.once("close", () => {
      if (--open === 0 && !session.closed) armIdle();
    });
  });
  const pinger = setInterval(() => {
    if (session.closed || session.destroyed || unanswered !== undefined) return;
    unanswered = setTimeout(() => session.destroy(), limits.keepAliveTimeoutMs).unref();
    const sent = session.ping(() => {
      clearTimeout(unanswered);
      unanswered = undefined;
    });
    if (!sent) {
      clearTimeout(unanswered);
      unanswered = undefined;
    }
  }, limits.keepAliveIntervalMs).unref();
  return () => {
    clearTimeout(idle);
    clearTimeout(unanswered);
    clearInterval(pinger);
  };
}
