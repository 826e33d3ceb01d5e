import http2 from "node:http2";
import { connect, type Socket } from "node:net";

// Clients that misbehave on purpose, below what a well-behaved HTTP/2
// library allows: a raw frame writer that ignores the server's settings,
// and a node:http2 request that sends what the test says and no more.

/** HTTP/2 frame types the tests look at (RFC 9113, 6). */
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** A frame the server sent. */
export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** A TCP connection speaking HTTP/2 frame by frame. */
export interface RawConnection {
  socket: Socket;
  /** Every frame received so far. */
  frames: Frame[];
  /** Whether the server closed the connection. */
  closed(): boolean;
  /** Resolves when the server has closed the connection. */
  whenClosed: Promise<void>;
  /** Sends a HEADERS frame for a gRPC call of `path`; `end` closes the request side. */
  headers(streamId: number, path: string, extra?: Record<string, string>, end?: boolean): void;
  data(streamId: number, bytes: Uint8Array, end: boolean): void;
}

/**
 * Opens a connection and sends the client preface and an empty SETTINGS.
 * Unless `answerPings` is false it acknowledges the server's SETTINGS and
 * PINGs as a live client does.
 */
export function rawConnection(port: number, options: { answerPings?: boolean } = {}): Promise<RawConnection> {
  const answerPings = options.answerPings ?? true;
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const frames: Frame[] = [];
    let buffered = Buffer.alloc(0);
    let closed = false;
    const whenClosed = new Promise<void>((done) => socket.once("close", () => ((closed = true), done())));
    socket.on("error", () => {});
    const send = (type: number, flags: number, streamId: number, payload: Uint8Array) => {
      const header = Buffer.alloc(9);
      header.writeUIntBE(payload.length, 0, 3);
      header.writeUInt8(type, 3);
      header.writeUInt8(flags, 4);
      header.writeUInt32BE(streamId, 5);
      if (!socket.destroyed) socket.write(Buffer.concat([header, payload]));
    };
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) break;
        const frame = {
          type: buffered[3]!,
          flags: buffered[4]!,
          streamId: buffered.readUInt32BE(5) & 0x7fffffff,
          payload: buffered.subarray(9, 9 + length),
        };
        buffered = buffered.subarray(9 + length);
        frames.push(frame);
        if (!answerPings) continue;
        if (frame.type === FRAME.SETTINGS && !(frame.flags & ACK)) send(FRAME.SETTINGS, ACK, 0, Buffer.alloc(0));
        if (frame.type === FRAME.PING && !(frame.flags & ACK)) send(FRAME.PING, ACK, 0, frame.payload);
      }
    });
    socket.once("connect", () => {
      socket.write(PREFACE);
      send(FRAME.SETTINGS, 0, 0, Buffer.alloc(0));
      resolve({
        socket,
        frames,
        closed: () => closed,
        whenClosed,
        headers: (streamId, path, extra = {}, end = false) => {
          const fields = { ":method": "POST", ":scheme": "http", ":authority": "localhost", ":path": path, "content-type": "application/grpc", te: "trailers", ...extra };
          const block = Buffer.concat(Object.entries(fields).map(([name, value]) => literal(name, value)));
          send(FRAME.HEADERS, END_HEADERS | (end ? END_STREAM : 0), streamId, block);
        },
        data: (streamId, bytes, end) => send(FRAME.DATA, end ? END_STREAM : 0, streamId, bytes),
      });
    });
    socket.once("error", reject);
  });
}

/** An HPACK literal header field without indexing, new name, no Huffman (RFC 7541, 6.2.2). */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0]), hpackString(name), hpackString(value)]);
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text);
  const length: number[] = [];
  // A 7-bit prefix integer (RFC 7541, 5.1).
  if (bytes.length < 127) length.push(bytes.length);
  else {
    length.push(127);
    let rest = bytes.length - 127;
    while (rest >= 128) {
      length.push((rest % 128) + 128);
      rest = Math.floor(rest / 128);
    }
    length.push(rest);
  }
  return Buffer.concat([Buffer.from(length), bytes]);
}

/** A gRPC length-prefixed message (flag 1 when `compressed`). */
export function envelope(message: Uint8Array, compressed = false): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(compressed ? 1 : 0, 0);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

/** What a request of {@link h2Request} got back. */
export interface H2Answer {
  status: number | undefined;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** grpc-status from the trailers or, for a trailers-only answer, the headers. */
  grpcStatus: number | undefined;
  /** The RST_STREAM code the stream ended with (0 is NO_ERROR). */
  rstCode: number;
  ms: number;
}

/**
 * Sends one HTTP/2 request on a connection of its own: `headers`, then
 * `body`, ending the request side only when `end` (the default). Resolves
 * when the stream closes, however it closes.
 */
export function h2Request(
  url: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | undefined,
  end = true,
): Promise<H2Answer> {
  const started = performance.now();
  return new Promise((resolve) => {
    const session = http2.connect(url);
    session.on("error", () => {});
    const stream = session.request({ ":method": "POST", ...headers }, { endStream: false });
    const answer: H2Answer = { status: undefined, headers: {}, trailers: {}, body: Buffer.alloc(0), grpcStatus: undefined, rstCode: 0, ms: 0 };
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      answer.headers = h;
      answer.status = Number(h[":status"]);
    });
    stream.on("trailers", (t) => (answer.trailers = t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => {});
    stream.on("close", () => {
      answer.body = Buffer.concat(chunks);
      const status = answer.trailers["grpc-status"] ?? answer.headers["grpc-status"];
      answer.grpcStatus = status === undefined ? undefined : Number(status);
      answer.rstCode = stream.rstCode ?? 0;
      answer.ms = performance.now() - started;
      session.destroy();
      resolve(answer);
    });
    if (body !== undefined) stream.write(body);
    if (end) stream.end();
  });
}
