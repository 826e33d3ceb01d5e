/**
 * The development PostgreSQL as a process of its own, so that `make dev`
 * decides when it stops: after the services that use it. Prints "ready"
 * once it accepts connections; SIGTERM stops it.
 */
import { devPostgres } from "./postgres.ts";

const server = await devPostgres();
console.log("ready");
const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
// Keep the event loop alive until a signal arrives.
setInterval(() => {}, 1 << 30);
