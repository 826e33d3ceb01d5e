import { spawn } from "node:child_process";
import { connect } from "node:net";
import path from "node:path";
import { readFileSync } from "node:fs";
import { freePort, repoRoot } from "./postgres.ts";

/** A service running as a process of its own, as in production: `node services/<name>/src/main.ts`. */
export interface ServiceProcess {
  port: number;
  pid: number;
  /** Whether it is still running. */
  alive(): boolean;
  /** Its resident set size now, in MB (from /proc). */
  rssMb(): number;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Base URL, such as http://127.0.0.1:41234. */
  url: string;
  /** Kills it with SIGKILL (a crash: no shutdown code runs) and waits until it is gone. */
  crash(): Promise<void>;
  /** Stops it with SIGTERM (a graceful shutdown) and waits until it is gone. */
  stop(): Promise<void>;
}

/**
 * Starts a service's main.ts with `env` on `port` (a free one by default)
 * and resolves once it accepts connections, which both services do only
 * after migrating their database.
 */
export async function startService(
  name: "inventory-service" | "order-service",
  env: Record<string, string>,
  port?: number,
): Promise<ServiceProcess> {
  const listenOn = port ?? (await freePort());
  const child = spawn(process.execPath, [path.join(repoRoot, "services", name, "src", "main.ts")], {
    env: { ...process.env, SERVER_PORT: String(listenOn), RUN_SEEDER: "false", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const deadline = Date.now() + 20_000;
  while (!(await accepts(listenOn))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${name} did not start (exit code ${child.exitCode}):\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const end = (signal: NodeJS.Signals) => async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return {
    port: listenOn,
    pid: child.pid!,
    alive: () => child.exitCode === null && child.signalCode === null,
    rssMb: () => rssMb(child.pid!),
    stderr: () => stderr,
    url: `http://127.0.0.1:${listenOn}`,
    crash: end("SIGKILL"),
    stop: end("SIGTERM"),
  };
}

/** Resident set size of a process in MB, from /proc/PID/status. */
export function rssMb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) / 1024;
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
