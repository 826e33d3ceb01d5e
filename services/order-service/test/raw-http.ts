import { connect, type Socket } from "node:net";
import { RAW_AUTHORIZATION } from "./system.ts";

/**
 * HTTP/1.1 over a raw socket, for requests no HTTP client would send
 * (malformed framing, a body that never comes) and for reading what the
 * server writes before any route runs.
 */

/** An HTTP response as read off the socket. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Milliseconds from the first byte sent to the whole answer read. */
  ms: number;
}

/**
 * Writes `request` to a new connection (a string or buffer, or a function of
 * the socket for slow senders) and reads one response: up to its
 * Content-Length, or until the server closes the connection.
 */
export function exchange(port: number, request: string | Buffer | ((socket: Socket) => void), timeoutMs = 5000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, "127.0.0.1");
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response within ${timeoutMs} ms; got ${JSON.stringify(data.toString())}`));
    }, timeoutMs);
    const done = (response: RawResponse) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(response);
    };
    const tryParse = (closed: boolean) => {
      const end = data.indexOf("\r\n\r\n");
      if (end < 0) {
        if (closed) done({ status: 0, headers: {}, body: data.toString(), ms: Date.now() - started });
        return;
      }
      const [statusLine, ...lines] = data.subarray(0, end).toString().split("\r\n");
      const headers = Object.fromEntries(
        lines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]),
      );
      const body = data.subarray(end + 4);
      const length = headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
      if ((length !== undefined && body.length >= length) || closed) {
        done({ status: Number(statusLine!.split(" ")[1]), headers, body: body.toString(), ms: Date.now() - started });
      }
    };
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      tryParse(false);
    });
    socket.on("close", () => tryParse(true));
    socket.on("error", () => {});
    socket.once("connect", () => {
      if (typeof request === "function") request(socket);
      else socket.write(request);
    });
  });
}

/**
 * The bytes of an HTTP/1.1 request; Content-Length is added for a body
 * unless `headers` sets framing itself, and a staff token
 * ({@link RAW_AUTHORIZATION}) unless `headers` sets `authorization`.
 */
export function http(method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer): Buffer {
  const framing = Object.keys(headers).some((h) => /^(content-length|transfer-encoding)$/i.test(h));
  const all: Record<string, string> = {
    host: "127.0.0.1",
    connection: "close",
    authorization: RAW_AUTHORIZATION,
    ...(body !== undefined ? { "content-type": "application/json" } : {}),
    ...(body !== undefined && !framing ? { "content-length": String(Buffer.byteLength(body)) } : {}),
    ...headers,
  };
  const head = `${method} ${path} HTTP/1.1\r\n${Object.entries(all).map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n`;
  return Buffer.concat([Buffer.from(head), body === undefined ? Buffer.alloc(0) : Buffer.from(body)]);
}
