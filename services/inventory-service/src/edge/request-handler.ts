import http2 from "node:http2";
import { Code, ConnectError, createConnectRouter, type Interceptor } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type { Logger } from "pino";
import type { Limits } from "../config.ts";
import type { Routes } from "../connect.ts";
import { capDeadlineHeader } from "../interceptors/deadline.ts";
import { undecodableRequestGate } from "../stock/errors.ts";

/** What {@link createRequestHandler} needs. */
export interface RequestHandlerOptions {
  routes: readonly Routes[];
  /** Around every call of every service, outermost first. */
  interceptors: Interceptor[];
  limits: Pick<Limits, "maxRequestBytes" | "maxResponseBytes" | "requestBodyTimeoutMs" | "maxHeaderListBytes">;
  logger: Logger;
}

/** Answers one HTTP/2 request. */
export type RequestHandler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

/**
 * The HTTP/2 request handler answering gRPC, gRPC-Web and Connect for the
 * given routes: connect-node's adapter with the edge's bounds added.
 *
 * - Messages are bounded by `maxRequestBytes` / `maxResponseBytes`, the
 *   request's after decompression too: connect-es hands readMaxBytes to
 *   zlib as maxOutputLength, which stops inflating at the bound
 *   (RESOURCE_EXHAUSTED).
 * - connect-es reads the whole request before the call starts and does not
 *   watch the call's deadline while it reads, so a request whose body never
 *   completes was never answered. Here the body must arrive within the
 *   client's deadline and `requestBodyTimeoutMs` (for streaming requests:
 *   each next part), or the call ends as DEADLINE_EXCEEDED; the stream is
 *   then reset, telling the client to stop sending.
 * - nghttp2 enforces the header size bound it advertises only once the
 *   client has acknowledged it; the first requests on a connection are
 *   checked here, and reset with ENHANCE_YOUR_CALM as nghttp2 does (which
 *   gRPC clients report as RESOURCE_EXHAUSTED).
 * - Deadlines too long for a Node.js timer are capped (see capDeadlineHeader).
 * - A body that is not protobuf is INVALID_ARGUMENT (see undecodableRequestGate).
 *
 * (The interceptors are given here, once, because interceptors set on one
 * service would replace these rather than add to them.)
 */
export function createRequestHandler(options: RequestHandlerOptions): RequestHandler {
  const { limits, logger } = options;
  const router = createConnectRouter({
    interceptors: options.interceptors,
    readMaxBytes: limits.maxRequestBytes,
    writeMaxBytes: limits.maxResponseBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
    requestGate: undecodableRequestGate,
    grpc: true,
    grpcWeb: true,
    connect: true,
  });
  options.routes.forEach((register) => register(router));
  const handlers = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));

  return (req, res) => {
    const handler = handlers.get(req.url.split("?", 1)[0]!);
    if (handler === undefined) {
      res.writeHead(404).end();
      return;
    }
    if (headerListBytes(req.rawHeaders) > limits.maxHeaderListBytes) {
      res.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      return;
    }
    const request = universalRequestFromNodeRequest(req, res, undefined, undefined);
    const deadlineMs = capDeadlineHeader(request.header);
    const streaming = handler.method.methodKind === "client_streaming" || handler.method.methodKind === "bidi_streaming";
    const body = arrivingWithin(request.body as AsyncIterable<Uint8Array>, {
      deadlineAt: deadlineMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + deadlineMs,
      bodyTimeoutMs: limits.requestBodyTimeoutMs,
      streaming,
    });
    handler({ ...request, body })
      .then((response) => {
        // Answered before the client finished sending (refused or timed
        // out): RST_STREAM(NO_ERROR) asks it to stop (RFC 9113, 8.1);
        // Node.js leaves the stream open otherwise. It goes out after the
        // answer's last frame: its trailers when it has them.
        res.stream.once(response.trailer === undefined ? "finish" : "wantTrailers", () =>
          setImmediate(() => {
            if (!req.complete && !res.stream.destroyed) res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
          }),
        );
        return universalResponseToNodeResponse(response, res);
      })
      .catch((err: unknown) => {
        // The client went away while the answer was being written.
        logger.debug({ err, procedure: handler.requestPath }, "could not write the answer");
        if (!res.stream.destroyed) res.stream.destroy();
      });
  };
}

/** The size of a header list as HTTP/2 counts it: name, value and 32 octets per field (RFC 9113, 6.5.2). */
function headerListBytes(raw: readonly string[]): number {
  let bytes = 0;
  for (const part of raw) bytes += Buffer.byteLength(part) + 16;
  return bytes;
}

/**
 * `body`, failing with DEADLINE_EXCEEDED when it does not arrive in time:
 * in full by the deadline and within `bodyTimeoutMs` of the start, or for
 * a streaming request, each next part within `bodyTimeoutMs` of the last.
 */
async function* arrivingWithin(
  body: AsyncIterable<Uint8Array>,
  options: { deadlineAt: number; bodyTimeoutMs: number; streaming: boolean },
): AsyncGenerator<Uint8Array> {
  const parts = body[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  let expired!: Promise<never>;
  const arm = () => {
    clearTimeout(timer);
    const left = options.deadlineAt - Date.now();
    const byDeadline = left <= options.bodyTimeoutMs;
    expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            byDeadline
              ? new ConnectError("the deadline passed before the request arrived", Code.DeadlineExceeded)
              : new ConnectError(`the request did not arrive within ${options.bodyTimeoutMs} ms`, Code.DeadlineExceeded),
          ),
        Math.max(0, Math.min(left, options.bodyTimeoutMs)),
      );
    });
    expired.catch(() => {});
  };
  arm();
  try {
    for (;;) {
      const part = await Promise.race([parts.next(), expired]);
      if (part.done) return;
      yield part.value;
      if (options.streaming) arm();
    }
  } finally {
    clearTimeout(timer);
  }
}
