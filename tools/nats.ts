import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "./postgres.ts";

/**
 * A real NATS server with JetStream for the tests that need a broker,
 * started from the `nats-server` binary (Debian's nats-server package, or
 * any release): each test file starts its own, so it may stop and restart
 * it without disturbing anyone else.
 */

/**
 * Where the nats-server binary is: NATS_SERVER_BIN when set (and only there),
 * else on PATH, else /usr/sbin; undefined when there is none.
 */
export function natsServerBinary(): string | undefined {
  const candidates = process.env.NATS_SERVER_BIN
    ? [process.env.NATS_SERVER_BIN]
    : [
        ...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, "nats-server")),
        "/usr/sbin/nats-server",
        "/usr/local/sbin/nats-server",
      ];
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there; try the next one
    }
  }
  return undefined;
}

export function natsServerAvailable(): boolean {
  return natsServerBinary() !== undefined;
}

/** Why the broker tests do not run on a machine without nats-server, for the name of a skipped suite. */
export const NATS_MISSING =
  "skipped: no nats-server binary (looked at NATS_SERVER_BIN, else PATH and /usr/sbin; install Debian's nats-server)";

/** `name`, with the reason it is skipped when there is no nats-server (also said on stderr, which reporters show). */
export function natsSuiteName(name: string): string {
  if (natsServerAvailable()) return name;
  console.warn(`"${name}": ${NATS_MISSING}`);
  return `${name} (${NATS_MISSING})`;
}

/** A NATS server of a test's own, which the test may take away and bring back. */
export interface OwnNats {
  /** nats://127.0.0.1:<port> */
  url: string;
  port: number;
  /** Stops the server (SIGTERM: it closes every connection) and waits until it is gone. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same JetStream store: streams and messages survive. */
  start(): Promise<void>;
  /** Stops it for good and removes its store. */
  close(): Promise<void>;
  /** What the server logged, for a failing test's message. */
  log(): string;
}

/**
 * Starts `nats-server -a 127.0.0.1 -p <free port> -js -sd <temporary
 * folder>` and resolves once it is ready (JetStream enabled, accepting
 * connections).
 */
export async function startOwnNats(): Promise<OwnNats> {
  const binary = natsServerBinary();
  if (!binary) throw new Error(`cannot start NATS: ${NATS_MISSING}`);
  const dir = await mkdtemp(path.join(tmpdir(), "ecom-own-nats-"));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = "";

  const start = async () => {
    if (child) return;
    const proc = spawn(binary, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    let ready = false;
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.length > 200_000) output = output.slice(-100_000);
      if (/Server is ready/.test(chunk.toString())) ready = true;
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", onData);
    proc.once("exit", () => {
      if (child === proc) child = undefined;
    });
    const deadline = Date.now() + 15_000;
    while (!(ready && (await accepts(port)))) {
      if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
        proc.kill("SIGKILL");
        child = undefined;
        throw new Error(`nats-server did not start on port ${port}:\n${output.slice(-4000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  const stop = async () => {
    const proc = child;
    if (!proc) return;
    child = undefined;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop,
    start,
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
    log: () => output,
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
